"""Demo customer app: the operations that left root-owned files behind in the seeds.

Every file it writes lands under DATA_DIR (a named volume): backups, uploads,
the sqlite database, and the safety copies a restore makes first. Run as UID 1000,
all of them come out owned by 1000.
"""
import datetime
import hashlib
import hmac
import json
import os
import shutil
import socket
import sqlite3
import tarfile
import threading

DATA_DIR = os.environ.get("DATA_DIR", "/data")
APP_VERSION = open(os.path.join(os.path.dirname(__file__), "VERSION")).read().strip()

def _secret_key():
    # fleet gives the key as a file (APP_SECRET_KEY_FILE: a Swarm secret, or on a Docker host a
    # read-only volume), never in the environment; APP_SECRET_KEY is for running the app by hand
    path = os.environ.get("APP_SECRET_KEY_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    return os.environ.get("APP_SECRET_KEY", "")


SECRET_KEY = _secret_key()

if len(SECRET_KEY) < 32:
    raise SystemExit("APP_SECRET_KEY (or the file APP_SECRET_KEY_FILE names) must hold at least 32 characters")

UPLOADS = os.path.join(DATA_DIR, "uploads")
BACKUPS = os.path.join(DATA_DIR, "backups")
INSTANCE = os.path.join(DATA_DIR, "instance")
DB_PATH = os.path.join(INSTANCE, "app.db")


def _stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d_%H%M%S_%f")


def _ensure_layout():
    for d in (UPLOADS, BACKUPS, INSTANCE):
        os.makedirs(d, exist_ok=True)
    with sqlite3.connect(DB_PATH) as db:
        db.execute("CREATE TABLE IF NOT EXISTS uploads (name TEXT PRIMARY KEY, size INTEGER, at TEXT)")


def _json(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _owner(path):
    st = os.stat(path)
    return {"path": path, "uid": st.st_uid, "gid": st.st_gid}


def _safe_name(name):
    base = os.path.basename(name or "")
    if not base or base.startswith("."):
        raise ValueError("name must be a plain file name")
    return base


def health(environ, start_response):
    # a file of its own: during a start-first update the old and the new container (and each one's
    # threads and healthcheck) probe the same volume at once, and one must not remove another's file
    probe = os.path.join(DATA_DIR, ".health-%s-%d-%d" % (socket.gethostname(), os.getpid(), threading.get_ident()))
    with open(probe, "w") as f:
        f.write(_stamp())
    os.remove(probe)
    return _json(start_response, "200 OK", {"status": "ok", "version": APP_VERSION})


def info(environ, start_response):
    return _json(start_response, "200 OK", {
        "version": APP_VERSION, "uid": os.getuid(), "gid": os.getgid(), "dataDir": DATA_DIR,
        # what the app signs with its key (sessions, links): the same key gives the same value
        "signed": hmac.new(SECRET_KEY.encode(), b"hardened-fleet", hashlib.sha256).hexdigest()[:16],
    })


def upload(environ, start_response, query):
    name = _safe_name(query.get("name"))
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size)
    path = os.path.join(UPLOADS, name)
    with open(path, "wb") as f:
        f.write(body)
    with sqlite3.connect(DB_PATH) as db:
        db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?)", (name, len(body), _stamp()))
    return _json(start_response, "201 Created", {"stored": _owner(path), "size": len(body)})


def backup(environ, start_response, query):
    path = os.path.join(BACKUPS, "backup_%s.tar.gz" % _stamp())
    with tarfile.open(path, "w:gz") as tar:
        tar.add(UPLOADS, arcname="uploads")
        tar.add(DB_PATH, arcname="instance/app.db")
    return _json(start_response, "201 Created", {"backup": _owner(path)})


def restore(environ, start_response, query):
    name = _safe_name(query.get("backup"))
    archive = os.path.join(BACKUPS, name)
    if not os.path.isfile(archive):
        return _json(start_response, "404 Not Found", {"error": "no backup named %s" % name})
    stamp = _stamp()
    # safety copies first, exactly as the seeds' restore did
    safety_uploads = os.path.join(DATA_DIR, "uploads_backup_%s" % stamp)
    safety_db = DB_PATH + ".backup_%s" % stamp
    shutil.copytree(UPLOADS, safety_uploads)
    shutil.copy2(DB_PATH, safety_db)
    staging = os.path.join(DATA_DIR, ".restore_%s" % stamp)
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, filter="data")
        else:  # Python without extraction filters: refuse anything that is not a plain member
            for member in tar.getmembers():
                if member.name.startswith("/") or ".." in member.name.split("/") or not (member.isfile() or member.isdir()):
                    raise ValueError("unsafe member in backup: %s" % member.name)
            tar.extractall(staging)
    shutil.rmtree(UPLOADS)
    shutil.move(os.path.join(staging, "uploads"), UPLOADS)
    shutil.move(os.path.join(staging, "instance", "app.db"), DB_PATH)
    shutil.rmtree(staging)
    return _json(start_response, "200 OK", {
        "restored": name, "safety": [_owner(safety_uploads), _owner(safety_db)],
    })


def files(environ, start_response, query):
    """Every path under DATA_DIR with its owner: what the tests and the audit compare with 1000."""
    out = []
    for root, dirs, names in os.walk(DATA_DIR):
        for n in dirs + names:
            try:
                out.append(_owner(os.path.join(root, n)))
            except FileNotFoundError:
                # removed between the listing and the stat: a health probe's file, or SQLite's journal
                continue
    return _json(start_response, "200 OK", {"files": out})


def db_check(environ, start_response, query):
    """The database as SQLite sees it: PRAGMA integrity_check and every committed upload row."""
    with sqlite3.connect(DB_PATH) as db:
        integrity = [r[0] for r in db.execute("PRAGMA integrity_check")]
        rows = [{"name": r[0], "size": r[1]} for r in db.execute("SELECT name, size FROM uploads ORDER BY name")]
    return _json(start_response, "200 OK", {"integrity": integrity, "rows": rows})


ROUTES = {
    ("POST", "/uploads"): upload,
    ("POST", "/backups"): backup,
    ("POST", "/restore"): restore,
    ("GET", "/files"): files,
    ("GET", "/db/check"): db_check,
}


def application(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    try:
        if path == "/healthz":
            return health(environ, start_response)
        if path == "/" and method == "GET":
            return info(environ, start_response)
        handler = ROUTES.get((method, path))
        if handler is None:
            return _json(start_response, "404 Not Found", {"error": "no route %s %s" % (method, path)})
        return handler(environ, start_response, query)
    except (ValueError, OSError) as exc:
        return _json(start_response, "400 Bad Request", {"error": str(exc)})


_ensure_layout()
