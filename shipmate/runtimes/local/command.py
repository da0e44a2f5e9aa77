"""How a manifest command becomes the argv a shim starts.

Commands are shell text (`gunicorn -b :$PORT app:app`, `./migrate && ./serve`), so they run
under `/bin/sh -c`. A simple command is `exec`ed by that shell: the app then is the process
the shim waits for, gets SIGTERM itself, and its own exit status is what a stop reports
(rather than 143, the shell's when SIGTERM kills it first). Anything compound (lists,
pipelines, subshells, shell keywords or builtins, leading assignments) runs as written.
"""

from __future__ import annotations

import shlex

SHELL = "/bin/sh"
# Tokens of punctuation that make a command more than one simple command.
_COMPOUND = frozenset(";&|()")
# First words `exec` cannot take: keywords and builtins that are not programs.
_NOT_PROGRAMS = frozenset(
    (
        *("!", "{", "}", "if", "then", "else", "elif", "fi", "case", "esac", "for", "while"),
        *("until", "do", "done", "function", "select", "exec", "cd", ".", "source", "eval"),
        *("export", "unset", "set", "alias", "unalias", "trap", "wait", "read", "return"),
        *("exit", "shift", "times", "ulimit", "umask", "readonly", "local", "break"),
        *("continue", "command", "builtin"),
    )
)


def is_simple(command: str) -> bool:
    """Whether `command` is one program with its arguments (and redirections)."""
    if "\n" in command or "\r" in command:
        return False
    lexer = shlex.shlex(command, posix=False, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say what is wrong
        return False
    if not tokens:
        return False
    first = tokens[0]
    if first in _NOT_PROGRAMS or "=" in first or set(first) & _COMPOUND:
        return False
    for token in tokens:
        # Quoted text keeps its quotes with posix=False: only bare punctuation counts.
        if token[0] in "\"'":
            continue
        if set(token) <= set(";&|()<>") and set(token) & _COMPOUND and token not in (">&", "<&"):
            return False
    return True


def shell_argv(command: str) -> list[str]:
    """The argv of the process that runs `command`."""
    return [SHELL, "-c", f"exec {command}" if is_simple(command) else command]
