#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs a systemd service's ExecStart= the way systemd would, without systemd
(this machine and CI have no systemd as PID 1): the environment of
Environment= and EnvironmentFile= (the file's settings win; '-' makes the
file optional), specifiers (%S and the other directory ones, %n, %N, %%),
${VAR} substituted inside a word, $VAR as a whole word split on white space,
StateDirectory= made with StateDirectoryMode= (--make-state-dirs: only where
the caller has put a private /var/lib), then execve() with systemd's PATH.

  unit-exec.py UNIT [--make-state-dirs]   exec the command
  unit-exec.py UNIT --print               print the command, one word a line
  unit-exec.py UNIT --getenv VAR          print VAR of the service's environment

Anything it does not know (another ExecStart prefix than '-', an unknown
specifier, more than one ExecStart=) is an error: a unit it cannot run
exactly is not run approximately."""
import os
import re
import shlex
import sys

SYSTEM_DIRS = {"S": "/var/lib", "C": "/var/cache", "L": "/var/log", "t": "/run", "E": "/etc"}
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def die(msg):
    print(f"unit-exec: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_unit(path):
    """[Service] settings: name -> list of values, in order."""
    svc, section, cont = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = cont + raw.rstrip("\n")
            cont = ""
            if line.endswith("\\"):
                cont = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("["):
                section = s
                continue
            if section != "[Service]" or "=" not in s:
                continue
            k, v = s.split("=", 1)
            svc.setdefault(k.strip(), []).append(v.strip())
    return svc


def specifiers(word, unit_name):
    def sub(m):
        c = m.group(1)
        if c == "%":
            return "%"
        if c in SYSTEM_DIRS:
            return SYSTEM_DIRS[c]
        if c == "n":
            return unit_name
        if c == "N":
            return unit_name.rsplit(".", 1)[0]
        die(f"specifier %{c} is not known here")
    return re.sub(r"%(.)", sub, word)


def env_file(path):
    """KEY=VALUE lines, as systemd reads an EnvironmentFile (quotes removed)."""
    out = {}
    with open(path) as f:
        for raw in f:
            s = raw.strip()
            if not s or s[0] in "#;":
                continue
            if "=" not in s:
                die(f"{path}: not an assignment: {s}")
            k, v = s.split("=", 1)
            words = shlex.split(v, comments=False) if v.strip() else [""]
            out[k.strip()] = " ".join(words)
    return out


def service_env(svc, unit_name):
    env = {}
    for v in svc.get("Environment", []):
        for a in shlex.split(specifiers(v, unit_name)):
            k, _, val = a.partition("=")
            env[k] = val
    for v in svc.get("EnvironmentFile", []):
        v = specifiers(v, unit_name)
        optional = v.startswith("-")
        path = v.lstrip("-")
        if not os.path.exists(path):
            if optional:
                continue
            die(f"EnvironmentFile {path} does not exist")
        env.update(env_file(path))
    return env


def command(svc, env, unit_name):
    execs = svc.get("ExecStart", [])
    if len(execs) != 1:
        die(f"{len(execs)} ExecStart= lines, not one")
    line = execs[0]
    if line[:1] in "@:+!":
        die(f"ExecStart prefix {line[0]} is not handled here")
    line = line.lstrip("-")
    argv = []
    for w in shlex.split(line):
        w = specifiers(w, unit_name)
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            argv += env.get(m.group(1), "").split()
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w))
    if not argv or not argv[0].startswith("/"):
        die(f"ExecStart does not start with an absolute path: {line}")
    return argv


def main():
    if len(sys.argv) < 2:
        die("usage: unit-exec.py UNIT [--make-state-dirs | --print | --getenv VAR]")
    unit = sys.argv[1]
    name = os.path.basename(unit)
    svc = parse_unit(unit)
    env = service_env(svc, name)
    argv = command(svc, env, name)
    mode = sys.argv[2:]
    if mode[:1] == ["--print"]:
        print("\n".join(argv))
        return
    if mode[:1] == ["--getenv"]:
        print(env.get(mode[1], ""))
        return
    if mode[:1] == ["--make-state-dirs"]:
        m = int(svc.get("StateDirectoryMode", ["0755"])[-1], 8)
        for v in svc.get("StateDirectory", []):
            for d in v.split():
                p = os.path.join(SYSTEM_DIRS["S"], d)
                os.makedirs(p, exist_ok=True)
                os.chmod(p, m)
    elif mode:
        die(f"unknown argument {mode[0]}")
    full = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    full.update(env)
    sys.stdout.flush()
    os.execve(argv[0], argv, full)


main()
