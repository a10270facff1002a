// hardened-fleet's Pulumi program. The stack's hardened-fleet:role says what it is:
//   environment  staging / prod: builds (staging) or promotes (prod) the image, publishes settings
//   customer     <env>-<customer>: one customer's hardened service in that environment
import { runStack } from "./src/program/run";

export = runStack();
