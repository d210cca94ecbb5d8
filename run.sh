#!/usr/bin/env bash
# The entry point. Every train_gpt.py variable set in the environment passes through.
#
#   bash run.sh                 CPU demo: install what is missing, build the embedded corpus,
#                               train a CPU-sized baseline, write the artifact, evaluate the
#                               round trip (plain and sliding), print val_bpb and bytes
#   bash run.sh test [ARGS]     install what is missing, run the tests (ARGS go to pytest)
#   bash run.sh data            build the embedded Shakespeare dataset (data/shakespeare.py)
#   bash run.sh fineweb         the challenge run: torchrun on every GPU over FineWeb
#   bash run.sh bench [ARGS]    CPU speed and memory per mode (tests/bench.py), printed as tables
#   bash run.sh bench --peer P  train_gpt.py beside the challenge's script P on this CPU (tests/bench_peer.py)
#   bash run.sh bench quality   quality at equal artifact bytes per mode (tests/bench_quality.py)
#   bash run.sh bench claims [--quick]   the public write-ups' findings, measured by small runs (tests/bench_claims.py)
#   bash run.sh bench gpu       GPU step time per mode at the baseline shape (tests/bench_gpu.py)
#   bash run.sh bench gpu --peer P   the same beside the challenge's CUDA script P (tests/bench_peer.py --gpu)
#   bash run.sh bench export    time and peak memory of the challenge-protocol export at 100 and 400 MB, plain and .gz
#   bash run.sh bench profile [--peer P] [--clock] [--shape 9x512]   where a step's time goes (tests/bench_profile.py)
#   bash run.sh bench gpu-session --out DIR [STAGE ...]   a lent GPU's session, prepared: the GPU benchmarks and CUDA tests
#                               in order of importance under one deadline, their raw output under DIR (tests/gpu_session.py)
#   bash run.sh sweep NAME=v1,v2 [NAME2=a,b ...]   the grid, one run after another, then a summary ('NAME=a,b;c' for values with commas)
#   bash run.sh summary [DIRS or LOGS]            markdown table of finished runs, best first
#   bash run.sh record --name NAME [--smoke] LOGS  a records/ submission folder from finished runs
#   bash run.sh import FILE --out OUT             the challenge script's final_model.int8.ptz as this script's artifact,
#                               for the model its variables describe (EVAL_ONLY=1 ARTIFACT=OUT scores it; records/tools.py)
#
# Paths given to the tools, and in DATA_PATH, TOKENIZER_PATH, DISTILL_TEACHER, RESUME and PYTHON, are read from the folder
# run.sh is called from; training runs in the project's folder, where logs/ and the artifact go.
#
# Sourced (`source run.sh`, `. run.sh`), its `set -e`, `cd` and `exec` acted on the caller's shell: `exec` replaced a terminal's
# shell with the run, and the terminal closed when it ended. Run by another shell (`sh run.sh`: dash said `set: Illegal option -o
# pipefail`), it failed on the bash it is written in. Both are refused in one line, in words any POSIX shell reads.
if [ -z "${BASH_VERSION:-}" ]; then
  echo "run.sh: needs bash (another shell started it, as \`sh run.sh\` does); run it: bash run.sh${1+ $*}" >&2
  return 2 2>/dev/null || exit 2  # sourced by that shell: return, leaving it open
fi
if (return 0 2>/dev/null); then
  echo "run.sh: do not source it (its settings, cd and exec would act on this shell); run it: bash run.sh${1+ $*}" >&2
  return 2
fi
set -euo pipefail
# (`bash ../../run.sh summary .` in a record's folder summarised the whole project.)
CALLER=$PWD
absolute() {  # absolute BASE NAMES...: each variable that holds a relative path is made absolute against BASE
  local base=$1 name
  for name in "${@:2}"; do
    if [ -n "${!name:-}" ] && [[ ${!name} != /* ]]; then export "$name=$base/${!name#./}"; fi
  done
}
INPUT_PATHS="DATA_PATH TOKENIZER_PATH DISTILL_TEACHER RESUME"  # records/tools.py's SWEEP_INPUT_PATHS
SELF=$(readlink -f "$0" 2>/dev/null) || SELF=$0  # through a link too (~/bin/pg -> the project's run.sh): the project is the file's
cd "$(dirname "$SELF")"
HERE=$PWD
SELF=$HERE/${SELF##*/}  # `bash main/run.sh help` read main/run.sh from inside main/
if [ "$CALLER" != "$HERE" ]; then
  absolute "$CALLER" $INPUT_PATHS
  if [[ ${PYTHON:-} == */* ]]; then absolute "$CALLER" PYTHON; fi
fi
PY=${PYTHON:-python3}
# Where run.sh installs when the system's python3 refuses pip installs (PEP 668: Debian 12, Ubuntu 23.04 and later); later runs use it.
VENV=.venv
if [ -z "${PYTHON:-}" ] && [ -x "$VENV/bin/python" ]; then PY=$VENV/bin/python; fi
# CPU build for machines without a GPU; override with TORCH_SPEC / TORCH_INDEX_URL
# (e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for a small download).
CPU_TORCH=torch==2.13.0

note() {  # a line on the way that ends nothing: a terminal closed before it (EIO, under `setsid` or `disown`) must not, under set -e
  echo "run.sh: $*" >&2 || true
}

has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; }

ensure_python() {  # a missing or too old interpreter is one line here, not a pip or syntax error later
  local version
  if ! version=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(sys.version_info < (3, 10))' 2>/dev/null); then
    echo "run.sh: PYTHON=$PY: ${version:+Python $version, }not a usable interpreter; accepted Python 3.10 or newer (set PYTHON to one)" >&2
    exit 2
  fi
}

missing_modules() {  # the modules of "$@" that $PY cannot import, one a line
  local mod
  for mod in "$@"; do "$PY" -c "import $mod" 2>/dev/null || echo "$mod"; done
}

ensure_deps() {  # ensure_deps [extra python modules...]
  ensure_python
  local missing rest
  missing=$(missing_modules torch numpy sentencepiece "$@")
  [ -n "$missing" ] || return 0
  if "$PY" -c 'import os, sys, sysconfig; sys.exit(sys.prefix != sys.base_prefix or not os.path.exists(
                 os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    if [ -x "$VENV/bin/python" ]; then
      note "$PY's packages belong to the system (PEP 668): using $VENV"
    else
      note "$PY's packages belong to the system (PEP 668): making $VENV to install into (later runs use it)"
      if ! "$PY" -m venv "$VENV" >&2; then
        echo "run.sh: $PY -m venv $VENV failed; install python3-venv (Debian, Ubuntu) or set PYTHON to an interpreter pip may install into" >&2
        exit 2
      fi
    fi
    PY=$VENV/bin/python
    missing=$(missing_modules torch numpy sentencepiece "$@")
  fi
  if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "run.sh: PYTHON=$PY has no pip to install $(echo $missing) with; install pip (python3 -m ensurepip, or apt install python3-pip)" \
         "or set PYTHON to an interpreter that has it" >&2
    exit 2
  fi
  if grep -qx torch <<<"$missing"; then
    local spec=${TORCH_SPEC:-$CPU_TORCH}
    if has_gpu; then spec=${TORCH_SPEC:-torch}; fi
    note "installing $spec"
    "$PY" -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$spec" || not_installed "$spec"
  fi
  rest=$(grep -vx torch <<<"$missing" || true)
  if [ -n "$rest" ]; then
    note "installing" $rest
    "$PY" -m pip install -q $rest || not_installed $rest
  fi
}

not_installed() {  # offline, pip's last words were `No matching distribution found for torch==2.13.0`: as if no such release existed
  echo "run.sh: pip could not install $* into $PY (pip's reason above; offline, it says no release matches); accepted: a" \
       "network that reaches PyPI (or the index PIP_INDEX_URL names), or the package installed beforehand; nothing was run" >&2
  exit 2
}

ensure_optional() {  # ensure_optional MODULES...: try to install; what stays missing is said once and the tests that need it skip
  local missing
  missing=$(missing_modules "$@")
  [ -n "$missing" ] || return 0
  note "installing" $missing
  "$PY" -m pip install -q $missing || true  # offline (a lent GPU box): pip fails, and the rest of the suite still runs
  missing=$(missing_modules $missing)
  [ -n "$missing" ] || return 0
  if [ -n "${CI:-}" ]; then  # CI runs every test: a skip there would hide a missing install step
    echo "run.sh: could not install" $missing "(CI=$CI: every test must run); accepted: a network that reaches PyPI, or the packages installed" >&2
    exit 2
  fi
  note "could not install" $missing "(offline?); the tests that need them are skipped"
}

ensure_shakespeare() {
  if [ ! -f data/datasets/shakespeare_sp1024/manifest.json ] || [ ! -f data/tokenizers/shakespeare_1024_bpe.model ]; then
    child "$PY" data/shakespeare.py
  fi
}

# The CPU-sized baseline: same architecture and optimizer, 4 blocks of width 256, context
# 256, 16,384 tokens a step in 4 micro-steps (of 4,096, 8,192 and 16,384 tokens, the best score
# after 300 s; of 2 and 4, the faster split on 2 cores: README, Beside the challenge's script),
# 300 s of training. Any variable already set wins, and so does any variable RECIPE=<name> sets
# (train_gpt.py's RECIPES): a recipe runs its own model, with the demo's defaults for the rest.
default() {  # default NAME VALUE: export NAME=VALUE unless the environment or the recipe sets NAME
  if [ -z "${!1:-}" ] && [[ " ${RECIPE_VARS:-} " != *" $1 "* ]]; then export "$1=$2"; fi
}

cpu_defaults() {
  if [ -n "${RECIPE:-}" ]; then  # the names the recipe sets (an unknown recipe is refused by train_gpt.py)
    RECIPE_VARS=$("$PY" -c 'import sys, train_gpt as t; print(" ".join(i.split("=")[0] for i in t.RECIPES.get(sys.argv[1], "").split()))' "$RECIPE")
  fi
  default DATA_PATH ./data/datasets/shakespeare_sp1024
  default TOKENIZER_PATH ./data/tokenizers/shakespeare_1024_bpe.model
  default NUM_LAYERS 4; default MODEL_DIM 256; default NUM_HEADS 4; default NUM_KV_HEADS 2
  default TRAIN_SEQ_LEN 256; default TRAIN_BATCH_TOKENS 16384; default GRAD_ACCUM_STEPS 4
  default ITERATIONS 2000; default WARMUP_STEPS 0; default WARMDOWN_ITERS 60
  default MAX_WALLCLOCK_SECONDS 300; default VAL_LOSS_EVERY 0; default TRAIN_LOG_EVERY 25
  default VAL_BATCH_SIZE 32768; default EVAL_STRIDE 128
  export RUN_ID=${RUN_ID:-cpu_demo_$(date +%Y%m%d_%H%M%S)}
}

gpu_defaults() {  # the challenge run: FineWeb, every GPU
  export DATA_PATH=${DATA_PATH:-./data/datasets/fineweb10B_sp1024}
  export TOKENIZER_PATH=${TOKENIZER_PATH:-./data/tokenizers/fineweb_1024_bpe.model}
  if ! compgen -G "$DATA_PATH/*_val_*.bin" >/dev/null; then
    echo "run.sh: no FineWeb shards in DATA_PATH=$DATA_PATH; fetch them with: $PY data/cached_challenge_fineweb.py --variant sp1024 --train-shards 80" >&2
    exit 2
  fi
  if [ -n "${NPROC:-}" ] && ! [[ $NPROC =~ ^[1-9][0-9]*$ ]]; then echo "run.sh: NPROC=$NPROC: accepted a count of processes (1, 2, ...)" >&2; exit 2; fi
  nproc_gpu=${NPROC:-$(nvidia-smi -L 2>/dev/null | grep -c GPU || true)}
  if [ "${nproc_gpu:-0}" -lt 1 ]; then echo "run.sh: no GPU found (nvidia-smi -L); set NPROC to run anyway" >&2; exit 2; fi
  LAUNCH=("$PY" -m torch.distributed.run --standalone "--nproc_per_node=$nproc_gpu")  # words: PY's path may hold a space
}

check_variables() {  # check_variables N: train_gpt.py's variables, evaluation data (the tokenizer against VOCAB_SIZE and the
                     # shards) and a DISTILL_TEACHER (its artifact, vocabulary and tokenizer), checked once before torchrun starts N
                     # processes: there each process printed a bad one's line, then torchrun its own 40-line report of their exits.
                     # Without a GPU (NPROC set on a CPU machine) also each process's model, micro-step (with its teacher) and
                     # evaluation batch against its share of the free memory, as each counts them, in its order
  "$PY" -c 'import os, sys, types; sys.path.insert(0, os.getcwd()); import torch, train_gpt
try:
    args, n, cpu = train_gpt.Hyperparameters(os.environ), int(sys.argv[1]), not torch.cuda.is_available()
    args.check_world(n)
    train_gpt.model_that_fits(args, share=n) if cpu else None
    val, _, sha, _ = train_gpt.load_eval_data(args.data_path, args.tokenizer_path, args.vocab_size, args.train_seq_len, "cpu")
    teacher = train_gpt.load_teacher(args, sha, "cpu")
    if cpu:
        train_gpt.model_whose_batches_fit(train_gpt.build_model(args), args, types.SimpleNamespace(use_cuda=False, local_procs=n, world_size=n),
                                          args.train_batch_tokens // (n * args.grad_accum_steps * args.train_seq_len), val.numel(), teacher)
except train_gpt.ConfigError as e: sys.exit(f"error: {e}")' "$1" || exit 2
}

py_from_anywhere() {  # a relative PY (.venv/bin/python) made absolute, for a tool that runs elsewhere and the runs it starts
  if [[ $PY == */* && $PY != /* ]]; then PY=$HERE/$PY; fi
}

tool() {  # tool SCRIPT ARGS...: a script of the project in the caller's folder (the paths given to it mean what they meant there),
          # in run.sh's place (exec): a signal to run.sh's pid is the tool's, which stops its runs itself
  py_from_anywhere
  cd "$CALLER" && exec "$PY" "$HERE/$1" "${@:2}"
}

# child CMD...: a step that run.sh waits on and passes its stop signals to, once. A `kill` of run.sh's pid (or `docker stop`, where
# run.sh is a container's first process) killed run.sh alone and left the run training. At a terminal, in its foreground, the run
# stays in run.sh's process group: what the terminal sends to the group (Ctrl-C, Ctrl-Z, Ctrl-\, a hang-up) reaches it as it reaches
# run.sh, and it may write to the terminal under `stty tostop` and read from it (breakpoint()); run.sh passes on SIGTERM alone, which
# no terminal sends. Anywhere else (no terminal: cron, a service, `docker run` without -t; a background job) it runs in a group of its own, given each
# SIGTERM, SIGHUP and SIGINT run.sh gets, and ignores SIGTTOU: a background group's first line under tostop stopped it for good;
# a SIGTSTP to run.sh (Ctrl-Z after `fg`) stops the run's group with run.sh.
CHILD_START='import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_DFL)  # bash starts a background child with both ignored
if sys.argv[1] == "1":
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # a read from the terminal would stop it too
os.execvp(sys.argv[2], sys.argv[2:])'
#
# torchrun (`bash run.sh fineweb`) starts each worker in a session of its own, out of reach of both the terminal and a stop of
# torchrun's group: Ctrl-Z stopped run.sh and torchrun while the shell said `Stopped` and the workers trained on, writing to the
# terminal. So a Ctrl-Z stops the run's processes and each session its children lead, then run.sh; `fg` continues them. A run that a
# signal stopped ends run.sh with 128 + the signal's number (torchrun itself ends 1 after its workers stopped on a Ctrl-C).
child() {
  local own=1 pid status sig got=
  if "$PY" -c 'import os, sys
try: sys.exit(os.tcgetpgrp(os.open("/dev/tty", os.O_RDONLY)) != os.getpgrp())
except OSError: sys.exit(1)' 2>/dev/null; then own=0; fi
  "$PY" -c "$CHILD_START" "$own" "$@" <&0 &
  pid=$!
  for sig in TERM HUP INT; do trap "got=$sig; kill -s $sig $pid 2>/dev/null || true" "$sig"; done
  if [ "$own" = 0 ]; then
    for sig in HUP INT; do trap "got=$sig" "$sig"; done  # the terminal sent them to the run as well
    trap "pause_run $pid" TSTP
  else  # Ctrl-Z once a background run.sh is brought to the foreground (`fg`) pauses the run with it, and the next `fg` continues both
    trap "pause_run $pid -$pid" TSTP
  fi
  while :; do
    status=0
    wait "$pid" || status=$?
    kill -0 "$pid" 2>/dev/null || break  # else a signal's trap ended the wait, and the child is still stopping
  done
  trap - TERM HUP INT TSTP
  if [ -n "$got" ] && [ "$status" != 0 ]; then status=$((128 + $(kill -l "$got"))); fi
  return "$status"
}

pause_run() {  # pause_run PID [GROUP]: GROUP and the sessions PID's children lead stop, then run.sh (the shell sees it stopped);
  local groups=("${@:2}") kid  # on `fg` all continue
  for kid in $(cat /proc/"$1"/task/*/children 2>/dev/null || pgrep -P "$1" 2>/dev/null || true); do groups+=("-$kid"); done
  if [ ${#groups[@]} -gt 0 ]; then kill -s STOP -- "${groups[@]}" 2>/dev/null || true; fi
  kill -s STOP $$
  if [ ${#groups[@]} -gt 0 ]; then kill -s CONT -- "${groups[@]}" 2>/dev/null || true; fi
}

has_peer() {  # --peer anywhere among the arguments picks the side-by-side benchmark (not only as the first)
  local arg
  for arg in "$@"; do case "$arg" in --peer|--peer=*) return 0 ;; esac; done
  return 1
}

summary() {  # summary LOGFILE: the numbers people look for. Called as `summary ... || true`: a terminal closed under a long run
  local log=$1  # that setsid or disown kept alive fails each echo (EIO), and set -e ended run.sh 1 after the run had succeeded
  echo "---"
  grep -E '^(recipe:|warning:|model_params|stopping_early|Total submission size int8\+|final_int8_[a-z]+_roundtrip(_sliding)? )' "$log" || true
  local artifact=${ARTIFACT:-final_model.int8.ptz}  # where the run wrote it: the project's folder, unless ARTIFACT says
  if [ "$CALLER" != "$HERE" ]; then log=$HERE/$log; fi  # the log's path as the caller's folder sees it
  echo "log: $log  artifact: $([[ $artifact == /* ]] || echo "$HERE/")$artifact"
}

misplaced() {  # `bash run.sh ITERATIONS=100` took the variable for a command, `bash run.sh cpu ITERATIONS=100` ran as if unsaid
  local vars="" rest="" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then vars+="$(printf '%q' "$a") "; else rest+=" $a"; fi
  done
  if [ -n "$vars" ]; then
    echo "run.sh: ${vars% }: variables go before the command, as in: ${vars}bash run.sh${rest}" >&2
  else
    echo "run.sh $1: takes no arguments, got '${*:2}'; its settings are variables, set before it: NAME=VALUE bash run.sh $1" >&2
  fi
  exit 2
}

cmd=${1:-cpu}
case "$cmd" in [A-Za-z_]*=*) misplaced "$@" ;; cpu|fineweb) [ $# -gt 1 ] && misplaced "$@" ;; esac
[ $# -gt 0 ] && shift
case "$cmd" in
  cpu)
    ensure_deps
    ensure_shakespeare
    cpu_defaults
    child "$PY" train_gpt.py
    summary "logs/$RUN_ID.txt" || true
    ;;
  test)
    ensure_deps pytest
    ensure_optional huggingface_hub zstandard pyarrow datasets
    ensure_shakespeare
    suite=tests  # a test file or folder among ARGS runs instead of the whole suite (pytest would run both)
    for arg in "$@"; do case "$arg" in tests|tests/*|*.py|*.py::*) suite= ;; esac; done
    # A passing run deletes its temporary folders (venvs, datasets, logs, artifacts: about 2 GB a run, which pytest would
    # otherwise keep for its last three runs); a failing one keeps the failed tests' folders under $TMPDIR/pytest-of-$USER.
    exec "$PY" -m pytest -q -p no:cacheprovider -o tmp_path_retention_policy=failed $suite "$@"
    ;;
  data)
    ensure_deps
    exec "$PY" data/shakespeare.py "$@"
    ;;
  fineweb)
    ensure_deps
    gpu_defaults
    export RUN_ID=${RUN_ID:-fineweb_$(date +%Y%m%d_%H%M%S)}
    check_variables "$nproc_gpu"
    child "${LAUNCH[@]}" train_gpt.py
    summary "logs/$RUN_ID.txt" || true
    ;;
  sweep)
    ensure_deps
    py_from_anywhere  # in LAUNCH: the runs start in sweeps/NAME/RUN
    if has_gpu; then gpu_defaults; else ensure_shakespeare; cpu_defaults; LAUNCH=("$PY"); fi
    absolute "$HERE" $INPUT_PATHS  # the defaults' ./data is the project's
    tool records/tools.py sweep --launch "$(printf '%q ' "${LAUNCH[@]}")" "$@"  # quoted as the shell would
    ;;
  summary)
    ensure_python
    tool records/tools.py summary "$@"
    ;;
  record)
    ensure_deps
    ensure_shakespeare
    tool records/tools.py record "$@"
    ;;
  import)
    ensure_deps
    tool records/tools.py import "$@"
    ;;
  bench)
    ensure_deps
    ensure_shakespeare
    case "${1:-}" in
      quality) shift; tool tests/bench_quality.py "$@" ;;
      claims) shift; ensure_deps zstandard; tool tests/bench_claims.py "$@" ;;
      gpu) shift; if has_peer "$@"; then tool tests/bench_peer.py --gpu "$@"; else tool tests/bench_gpu.py "$@"; fi ;;
      export) shift; tool tests/bench_export.py "$@" ;;
      profile) shift; tool tests/bench_profile.py "$@" ;;
      gpu-session) shift; tool tests/gpu_session.py "$@" ;;
      *) if has_peer "$@"; then tool tests/bench_peer.py "$@"; else tool tests/bench.py "$@"; fi ;;
    esac
    ;;
  -h|--help|help)
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$SELF"  # the header comment, to its last line
    ;;
  *)
    echo "run.sh: unknown command '$cmd'; accepted: cpu (default), test, data, fineweb, bench, sweep, summary, record, import, help" >&2
    exit 2
    ;;
esac
