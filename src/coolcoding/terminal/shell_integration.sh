# Cool Coding Platform shell integration for interactive bash (sourced from /etc/profile.d).
# Marks each command with OSC 633 sequences that the server strips from the output and records:
#   E (command line), C (command starts), D;<exit code> (command ended), P;Cwd=<dir> (before a prompt)
# Each carries this terminal's random nonce, read once from CC_SHELL_NONCE and then unset, so a
# program that prints look-alike sequences cannot forge a record.
if [ -n "${BASH_VERSION-}" ] && [[ $- == *i* ]] && [ -n "${CC_SHELL_NONCE-}" ] \
    && [ -z "${__cc_si_loaded-}" ]; then
  __cc_si_loaded=1
  __cc_nonce=$CC_SHELL_NONCE
  unset CC_SHELL_NONCE
  # `history 1` names the command being run: a space-prefixed command must be recorded too.
  HISTCONTROL=${HISTCONTROL//ignoreboth/ignoredups}
  HISTCONTROL=${HISTCONTROL//ignorespace/}

  # Payload escaping: backslash, ';' and control characters that would end the sequence.
  __cc_escape() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//;/\\x3b}
    s=${s//$'\a'/\\x07}
    s=${s//$'\e'/\\x1b}
    s=${s//$'\n'/\\x0a}
    s=${s//$'\r'/\\x0d}
    __cc_escaped=$s
  }

  # Runs in PS0's command substitution (a subshell): after a line is read, before it runs.
  __cc_preexec() {
    local line
    line=$(HISTTIMEFORMAT='' builtin history 1)
    [[ $line =~ ^[[:space:]]*[0-9]+[*]?[[:space:]]+(.*)$ ]] && line=${BASH_REMATCH[1]}
    __cc_escape "$line"
    builtin printf '\e]633;E;%s;%s\a\e]633;C;%s\a' "$__cc_nonce" "$__cc_escaped" "$__cc_nonce"
  }

  # First in PROMPT_COMMAND: $? is still the finished command's status. A D without a C before
  # it (an empty line) is ignored by the server.
  __cc_precmd() {
    local status=$?
    __cc_escape "$PWD"
    builtin printf '\e]633;D;%s;%s\a\e]633;P;%s;Cwd=%s\a' \
      "$__cc_nonce" "$status" "$__cc_nonce" "$__cc_escaped"
    return $status
  }

  PS0='$(__cc_preexec)'"${PS0-}"
  PROMPT_COMMAND="__cc_precmd${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
fi
