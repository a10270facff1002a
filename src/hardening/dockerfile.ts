/**
 * Renders the hardened multi-stage Dockerfile for the demo runtime: a Python WSGI app under gunicorn.
 * The runtime is FROM scratch: the interpreter, the libraries it loads and their Debian package
 * records, gathered from the pinned base by src/image/assets/rootfs.py; no shell, apt or dpkg.
 * Pure: the same inputs give the same text, so a rebuild happens only when something real changed.
 */
import type { AppSettings } from "../config/schema";
import { APP_GID, APP_UID, HARDENING_PROFILE_VERSION, LABEL_BASE, LABEL_BASE_DIGEST, LABEL_NONROOT_UID, LABEL_PROFILE } from "./names";

/** The build argument that carries the base's digest into the label LABEL_BASE_DIGEST (components/hardenedImage.ts sets it). */
export const BASE_DIGEST_ARG = "BASE_DIGEST";

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
/** Gathers the runtime's root filesystem in the rootfs stage (src/image/assets/rootfs.py); not in the image */
export const CONTEXT_ROOTFS_SCRIPT = "hardened-fleet/rootfs.py";
/** where the rootfs stage assembles what the scratch runtime copies */
export const ROOTFS_DIR = "/rootfs";
/** stdlib modules no WSGI app under gunicorn needs: tests, GUI and IDE, installers, 2to3, help texts */
export const STDLIB_DROPPED = ["test", "idlelib", "tkinter", "turtle", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"] as const;
/** loaded with dlopen, so ldd does not list it: glibc needs it to unwind a thread that exits (pthread_exit) */
export const DLOPENED = ["libgcc_s.so.1"] as const;
/**
 * Extension modules left out with the libraries only they load: CPython's test modules, terminal
 * line editing and curses (readline, ncurses), Berkeley DB, NIS (libnsl, libtirpc, Kerberos) and OSS audio.
 */
export const EXTENSIONS_DROPPED = [
  "_testbuffer", "_testcapi", "_testclinic", "_testimportmultiple", "_testinternalcapi", "_testmultiphase", "_xxtestfuzz",
  "_ctypes_test", "xxlimited", "xxlimited_35", "readline", "_curses", "_curses_panel", "_dbm", "_gdbm", "nis", "ossaudiodev", "_tkinter",
] as const;
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
  const writable = [app.dataPath, ...app.writablePaths.filter((p) => p !== app.dataPath)];
  // the data path is the app's alone; /tmp keeps its sticky bit (it is a tmpfs at runtime anyway)
  const modes = writable.map((p) => `--writable ${p}:${p === app.dataPath ? "0750" : p === "/tmp" ? "1777" : "0755"}`);
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

# ---- rootfs: from the pinned base, only the interpreter, the libraries it and the venv load, their package records ----
FROM ${i.base} AS rootfs
COPY --from=builder ${VENV_DIR} ${VENV_DIR}
COPY ${CONTEXT_ROOTFS_SCRIPT} /build/rootfs.py
RUN python3 /build/rootfs.py --dest ${ROOTFS_DIR} --scan ${VENV_DIR} --package-records ${DLOPENED.map((l) => `--dlopen ${l}`).join(" ")} \\
      --user ${app.user}:${APP_UID}:${APP_GID} ${modes.join(" ")} \\
      --drop-stdlib ${STDLIB_DROPPED.join(",")} \\
      --drop-ext ${EXTENSIONS_DROPPED.join(",")}

# ---- runtime: no shell, no package manager, no setuid file; the interpreter, the venv and the app ----
FROM scratch
LABEL ${labels.trimStart()}
# the digest of the base this build gathered from (a build argument fleet sets): \`fleet bases\` compares it with the newest
ARG ${BASE_DIGEST_ARG}=unknown
LABEL ${LABEL_BASE_DIGEST}="\${${BASE_DIGEST_ARG}}"
COPY --from=rootfs ${ROOTFS_DIR}/ /
COPY --from=builder --chown=0:0 ${VENV_DIR} ${VENV_DIR}
COPY --chown=${APP_UID}:${APP_GID} ${CONTEXT_APP_DIR}/ ${APP_DIR}/
# PID 1: stopped by the engine (a reboot), the service exits 143 and on-failure brings it back
COPY ${CONTEXT_SUPERVISOR} ${SUPERVISOR_PATH}
WORKDIR ${APP_DIR}
ENV PATH=${VENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin \\
    LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    PORT=${app.port} DATA_DIR=${app.dataPath} HEALTH_PATH=${hc.path}
USER ${APP_UID}:${APP_GID}
EXPOSE ${app.port}
HEALTHCHECK --interval=${hc.intervalSeconds}s --timeout=${hc.timeoutSeconds}s --start-period=${hc.startPeriodSeconds}s --retries=${hc.retries} \\
  CMD ${JSON.stringify(hc.command)}
ENTRYPOINT ${JSON.stringify([`${VENV_DIR}/bin/python`, SUPERVISOR_PATH])}
CMD ${JSON.stringify(cmd)}
`;
}
