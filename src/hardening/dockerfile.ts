/**
 * Renders the hardened multi-stage Dockerfile for the demo runtime: a Python WSGI app under gunicorn.
 * Pure: the same inputs give the same text, so a rebuild happens only when something real changed.
 */
import type { AppSettings } from "../config/schema";
import { APP_GID, APP_UID, HARDENING_PROFILE_VERSION, LABEL_BASE, LABEL_NONROOT_UID, LABEL_PROFILE } from "./names";

export interface DockerfileInputs {
  base: string;
  builder: string;
  app: AppSettings;
  /** app version (the VERSION file of the app source) */
  version: string;
  /** content hash (or commit) of the app source */
  revision: string;
  /** ISO time of the newest source file: stable across rebuilds of the same source */
  created: string;
  sourceUrl: string;
}

/** Layout of the build context the image component assembles. */
export const CONTEXT_APP_DIR = "app";
export const CONTEXT_WHEELHOUSE_DIR = "wheelhouse";
export const CONTEXT_REQUIREMENTS = "requirements.txt";
/** PID 1 of the image (src/image/assets/supervise.py): passes signals on, reaps, exits 143 when stopped by TERM */
export const CONTEXT_SUPERVISOR = "hardened-fleet/supervise.py";
export const SUPERVISOR_PATH = "/opt/hardened-fleet/supervise.py";
export const APP_DIR = "/app";
export const VENV_DIR = "/opt/venv";

const quote = (s: string) => JSON.stringify(s);

export function imageLabels(i: DockerfileInputs): Record<string, string> {
  return {
    "org.opencontainers.image.source": i.sourceUrl,
    "org.opencontainers.image.revision": i.revision,
    "org.opencontainers.image.created": i.created,
    "org.opencontainers.image.version": i.version,
    "org.opencontainers.image.base.name": i.base,
    [LABEL_NONROOT_UID]: String(APP_UID),
    [LABEL_PROFILE]: HARDENING_PROFILE_VERSION,
    [LABEL_BASE]: i.base,
  };
}

export function renderDockerfile(i: DockerfileInputs): string {
  const { app } = i;
  const hc = app.healthcheck;
  const writable = [app.dataPath, ...app.writablePaths];
  const labels = Object.entries(imageLabels(i))
    .map(([k, v]) => `      ${k}=${quote(v)}`)
    .join(" \\\n");
  const cmd = [
    `${VENV_DIR}/bin/gunicorn`, "--bind", `0.0.0.0:${app.port}`, "--workers", "2",
    "--worker-tmp-dir", "/tmp", "--access-logfile", "-", "app:application",
  ];
  return `# Rendered by hardened-fleet (hardening profile ${HARDENING_PROFILE_VERSION}). Do not edit: change the config.

# ---- builder: compilers, headers and pip live here and nowhere else ----
FROM ${i.builder} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY ${CONTEXT_REQUIREMENTS} /build/${CONTEXT_REQUIREMENTS}
COPY ${CONTEXT_WHEELHOUSE_DIR}/ /build/${CONTEXT_WHEELHOUSE_DIR}/
# offline install from the wheelhouse made on the host: no network inside the build
RUN set -e; \\
    python3 -m venv ${VENV_DIR}; \\
    ${VENV_DIR}/bin/pip install --no-index --find-links /build/${CONTEXT_WHEELHOUSE_DIR} -r /build/${CONTEXT_REQUIREMENTS}; \\
    ${VENV_DIR}/bin/python -m pip uninstall --yes --quiet pip setuptools; \\
    find ${VENV_DIR} -name '__pycache__' -prune -exec rm -rf {} +

# ---- runtime: the pinned base, the venv and the app; no build tools ----
FROM ${i.base}
LABEL ${labels.trimStart()}
RUN set -e; \\
    groupadd --gid ${APP_GID} ${app.user}; \\
    useradd --uid ${APP_UID} --gid ${APP_GID} --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${app.user}; \\
    mkdir -p ${writable.join(" ")}; \\
    chown ${APP_UID}:${APP_GID} ${writable.join(" ")}; \\
    chmod 0750 ${app.dataPath}; \\
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /root/.cache /tmp/*; \\
    find / -xdev -type f -perm /6000 -exec chmod a-s {} +
COPY --from=builder --chown=0:0 ${VENV_DIR} ${VENV_DIR}
COPY --chown=${APP_UID}:${APP_GID} ${CONTEXT_APP_DIR}/ ${APP_DIR}/
# PID 1: stopped by the engine (a reboot), the service exits 143 and on-failure brings it back
COPY ${CONTEXT_SUPERVISOR} ${SUPERVISOR_PATH}
WORKDIR ${APP_DIR}
ENV PATH=${VENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    PORT=${app.port} DATA_DIR=${app.dataPath} HEALTH_PATH=${hc.path}
USER ${APP_UID}:${APP_GID}
EXPOSE ${app.port}
HEALTHCHECK --interval=${hc.intervalSeconds}s --timeout=${hc.timeoutSeconds}s --start-period=${hc.startPeriodSeconds}s --retries=${hc.retries} \\
  CMD ${JSON.stringify(hc.command)}
ENTRYPOINT ${JSON.stringify([`${VENV_DIR}/bin/python`, SUPERVISOR_PATH])}
CMD ${JSON.stringify(cmd)}
`;
}
