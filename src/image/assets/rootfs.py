"""Gathers the root filesystem of a runtime without a shell, in a build stage FROM the pinned base.

hardened-fleet's rendered Dockerfile runs it in a stage of its own (the base has sh and dpkg there);
the final stage is FROM scratch and copies what it made. Into --dest it puts:

- the interpreter that runs this script, the python3 link to it, its standard library without the
  --drop-stdlib modules, and lib-dynload without the --drop-ext extension modules;
- every shared library those and the ELF files under --scan (the venv) load, followed with ldd, the
  dynamic loader included, and the --dlopen libraries (which ldd cannot see); every symlink on the way (a merged /usr, soname links) is kept as a link;
- /etc/passwd and /etc/group holding root and --user, neither with a login shell;
- /etc/os-release, /etc/debian_version and (--package-records), for each Debian package owning a
  file it copied, that package's paragraph of /var/lib/dpkg/status as /var/lib/dpkg/status.d/<package>
  (what scanners read instead of a dpkg database) with its copyright file;
- the --writable directories, owned by the app user.

Setuid and setgid bits are never copied. It fails, naming the cause, when a library cannot be found
or the venv was made by another interpreter than this one.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig

USRMERGED = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")


class Rootfs:
    def __init__(self, dest):
        self.dest = dest
        self.copied = []  # every file and link copied, by its path in the source
        self.seen = set()
        self.elf = []

    def target(self, path):
        return os.path.join(self.dest, path.lstrip("/"))

    def mkdirs(self, path):
        """Creates path's directories in dest with the source's modes (root-owned)."""
        if path == "/" or os.path.isdir(self.target(path)):
            return
        self.mkdirs(os.path.dirname(path))
        os.mkdir(self.target(path))
        os.chmod(self.target(path), os.stat(path).st_mode & 0o1777)

    def link(self, path):
        os.symlink(os.readlink(path), self.target(path))
        self.copied.append(path)

    def add(self, path, skip=None):
        """Copies path (a file, link or directory tree), recreating each link on the way as a link."""
        path = os.path.normpath(path)
        if path in self.seen:
            return
        self.seen.add(path)
        parts = path.strip("/").split("/")
        current = "/"
        for i, name in enumerate(parts):
            current = os.path.join(current, name)
            if os.path.islink(current):
                if not os.path.lexists(self.target(current)):
                    self.mkdirs(os.path.dirname(current))
                    self.link(current)
                resolved = os.path.join(os.path.dirname(current), os.readlink(current), *parts[i + 1:])
                self.add(resolved, skip)
                return
        if not os.path.exists(path):
            raise SystemExit("rootfs.py: %s does not exist" % path)
        self.mkdirs(os.path.dirname(path))
        if os.path.isdir(path):
            self.tree(path, skip)
        else:
            self.file(path)

    def tree(self, root, skip):
        for top, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not (skip and skip(os.path.join(top, d))))
            self.mkdirs(top)
            for name in dirs + sorted(files):
                path = os.path.join(top, name)
                if skip and skip(path):
                    continue
                if os.path.islink(path):
                    if not os.path.lexists(self.target(path)):
                        self.link(path)
                    if os.path.exists(path):  # a link out of the tree: its target comes too
                        self.add(os.path.join(top, os.readlink(path)))
                elif os.path.isdir(path):
                    self.mkdirs(path)
                elif os.path.isfile(path):
                    self.file(path)

    def file(self, path):
        if os.path.lexists(self.target(path)):
            return
        shutil.copy2(path, self.target(path))
        os.chmod(self.target(path), os.stat(path).st_mode & 0o1777)  # no setuid/setgid
        self.copied.append(path)
        if is_elf(path):
            self.elf.append(path)


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def needed(path):
    """The libraries the dynamic loader maps for path (itself included), by ldd; [] for a static file."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    if out.returncode != 0:
        if "not a dynamic executable" in out.stdout + out.stderr:
            return []
        raise SystemExit("rootfs.py: ldd %s failed: %s" % (path, out.stderr.strip()))
    libs = []
    for line in out.stdout.splitlines():
        if "not found" in line:
            raise SystemExit("rootfs.py: %s needs %s, which the base does not have" % (path, line.split()[0]))
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def follow_libraries(fs, scanned, inside):
    """Adds every library the ELF files copied so far, and those in `scanned`, need (not those under `inside`)."""
    queue = list(scanned)
    done = set()
    while queue or fs.elf:
        path = queue.pop() if queue else fs.elf.pop()
        if path in done:
            continue
        done.add(path)
        for lib in needed(path):
            if not any(lib.startswith(d + "/") for d in inside):
                fs.add(lib)


def find_library(name):
    """The path of a library the loader would find by name, in the base's library directories."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in ("/usr/lib/" + multiarch, "/lib/" + multiarch, "/usr/lib64", "/lib64", "/usr/lib", "/lib"):
        if os.path.lexists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit("rootfs.py: the base has no %s" % name)


def merged(path):
    return "/usr" + path if path.startswith(USRMERGED) else path


def owners():
    """Path (merged /usr form) to the Debian packages that own it, from /var/lib/dpkg/info/*.list."""
    info = "/var/lib/dpkg/info"
    found = {}
    if not os.path.isdir(info):
        return found
    for name in sorted(os.listdir(info)):
        if not name.endswith(".list"):
            continue
        package = name[:-len(".list")].split(":")[0]
        with open(os.path.join(info, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                path = merged(line.rstrip("\n"))
                if not os.path.isdir(path):  # directories (/lib, /usr/share/doc) are shared by many packages
                    found.setdefault(path, set()).add(package)
    return found


def status_paragraphs():
    """Package name to its paragraph of /var/lib/dpkg/status."""
    paragraphs = {}
    try:
        with open("/var/lib/dpkg/status", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return paragraphs
    for block in text.split("\n\n"):
        m = re.search(r"^Package: (\S+)$", block, re.M)
        if m and re.search(r"^Status: .* installed$", block, re.M):
            paragraphs[m.group(1)] = block.strip("\n") + "\n"
    return paragraphs


def write_package_records(fs):
    """status.d/<package> for every package owning a copied file, and its copyright file; returns the names."""
    by_path = owners()
    packages = set()
    for path in fs.copied:
        packages |= by_path.get(merged(os.path.normpath(path)), set())
    paragraphs = status_paragraphs()
    status_d = fs.target("/var/lib/dpkg/status.d")
    os.makedirs(status_d, exist_ok=True)
    for package in sorted(packages):
        if package not in paragraphs:
            raise SystemExit("rootfs.py: package %s owns copied files but has no installed status" % package)
        with open(os.path.join(status_d, package), "w", encoding="utf-8") as f:
            f.write(paragraphs[package])
        copyright_file = "/usr/share/doc/%s/copyright" % package
        if os.path.isfile(copyright_file):
            fs.add(copyright_file)
    return sorted(packages)


def write(fs, path, text, mode=0o644):
    fs.mkdirs(os.path.dirname(path))
    with open(fs.target(path), "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(fs.target(path), mode)


def venv_version(venv):
    """major.minor of the Python that made venv (its pyvenv.cfg), or None when it is no venv."""
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as f:
            m = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", f.read(), re.M)
    except FileNotFoundError:
        return None
    return m.group(1) if m else None


def main(argv):
    p = argparse.ArgumentParser(prog="rootfs.py")
    p.add_argument("--dest", required=True)
    p.add_argument("--scan", action="append", default=[], help="a tree (the venv) whose ELF files' libraries come too; the tree itself does not")
    p.add_argument("--user", required=True, help="name:uid:gid of the app user")
    p.add_argument("--writable", action="append", default=[], help="path:mode, owned by the app user")
    p.add_argument("--drop-stdlib", default="", help="comma-separated top-level stdlib modules and packages to leave out")
    p.add_argument("--drop-ext", default="", help="comma-separated lib-dynload extension modules to leave out")
    p.add_argument("--dlopen", action="append", default=[], help="a library loaded at run time, which ldd cannot see (libgcc_s.so.1)")
    p.add_argument("--package-records", action="store_true", help="write status.d records of the packages whose files were copied")
    args = p.parse_args(argv)

    name, uid, gid = args.user.split(":")
    drop_stdlib = {d for d in args.drop_stdlib.split(",") if d}
    drop_ext = {d for d in args.drop_ext.split(",") if d}
    os.makedirs(args.dest, exist_ok=True)
    fs = Rootfs(args.dest)

    exe = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_path("stdlib")
    dynload = os.path.join(stdlib, "lib-dynload")

    def skip(path):
        rel = os.path.relpath(path, stdlib)
        top = rel.split(os.sep)[0]
        if rel.startswith("lib-dynload" + os.sep):
            return os.path.basename(path).split(".")[0] in drop_ext
        if top == "__pycache__":
            return os.path.basename(path).split(".")[0] in drop_stdlib
        return top.split(".")[0] in drop_stdlib or top.startswith("config-")

    for scan in args.scan:
        made_by = venv_version(scan)
        if made_by and made_by != "%d.%d" % sys.version_info[:2]:
            raise SystemExit("rootfs.py: %s was made by Python %s but the base has %d.%d: builder and base must have the same Python"
                             % ((scan, made_by) + sys.version_info[:2]))
    fs.add(exe)
    fs.add(shutil.which("python3") or exe)
    fs.add(stdlib, skip)
    if os.path.isdir(dynload):
        fs.add(dynload, skip)
    scanned = []
    for scan in args.scan:
        for top, _dirs, files in os.walk(scan):
            for f in files:
                path = os.path.join(top, f)
                if os.path.islink(path):
                    target = os.path.join(top, os.readlink(path))
                    if not os.path.realpath(target).startswith(scan + "/"):
                        fs.add(target)
                elif is_elf(path):
                    scanned.append(path)
    for name in args.dlopen:
        fs.add(find_library(name))
    follow_libraries(fs, scanned, args.scan)

    for path in ("/etc/os-release", "/etc/debian_version"):
        if os.path.lexists(path):
            fs.add(path)
    packages = write_package_records(fs) if args.package_records else []

    write(fs, "/etc/passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%s:%s::/nonexistent:/usr/sbin/nologin\n" % (name, uid, gid))
    write(fs, "/etc/group", "root:x:0:\n%s:x:%s:\n" % (name, gid))
    write(fs, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    for spec in args.writable:
        path, mode = spec.rsplit(":", 1)
        os.makedirs(fs.target(path), exist_ok=True)
        os.chown(fs.target(path), int(uid), int(gid))
        os.chmod(fs.target(path), int(mode, 8))
    print("rootfs.py: %d files and links, %d packages: %s" % (len(fs.copied), len(packages), " ".join(packages)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
