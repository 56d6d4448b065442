#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes edist(1) from the program's own help: `edist --help` for the
synopsis and each `edist COMMAND --help` for its section, so the man page
says what --help says.  Usage: edist_man.py EDIST OUTPUT VERSION"""
import re
import subprocess
import sys

edist, output, version = sys.argv[1:4]


def help_of(*args):
    r = subprocess.run([edist, *args, "--help"], capture_output=True, text=True,
                       timeout=30)
    return (r.stdout or r.stderr).rstrip("\n")


def roff(text):
    """Literal text in a no-fill block: backslashes and leading dots escaped."""
    lines = []
    for line in text.split("\n"):
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


top = help_of()
commands = []
for line in top.split("\n"):
    m = re.match(r"^  ([a-z]+) ", line)
    if m and m.group(1) not in commands:
        commands.append(m.group(1))

out = [
    '.TH EDIST 1 "" "edist %s" "User Commands"' % version,
    ".SH NAME",
    "edist \\- Erlang distribution nodes, port mapper and tools in C",
    ".SH SYNOPSIS",
    ".B edist",
    ".I COMMAND",
    "[\\fIARGS\\fR]",
    ".SH DESCRIPTION",
    "The command-line face of edist: a node (\\fBedist node\\fR) that other "
    "Erlang and edist nodes reach as name@host, the port mapper, and "
    "clients that ping, call and inspect nodes. Every section below is the "
    "command's own \\fB--help\\fR.",
    ".PP",
    ".nf",
    roff(top),
    ".fi",
    ".SH COMMANDS",
]
for c in commands:
    out += [".SS edist %s" % c, ".nf", roff(help_of(c)), ".fi"]
out += [
    ".SH ENVIRONMENT",
    "Every node option is also read from EDIST_\\fIKEY\\fR "
    "(\\fBedist node --print-config\\fR lists them and where each value "
    "came from); ERL_EPMD_PORT and ERL_EPMD_ADDRESS as erl reads them.",
    ".SH FILES",
    "$HOME/.erlang.cookie, the cookie when none is given. Annotated example "
    "configurations are installed with the documentation (configs/).",
    ".SH SEE ALSO",
    ".BR erl (1),",
    ".BR epmd (1),",
    ".BR erl_call (1)",
]
with open(output, "w") as f:
    f.write("\n".join(out) + "\n")
