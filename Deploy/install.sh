#!/usr/bin/env bash
# Install Keel (five daemons + the keel CLI) on a systemd host.
#
#   swift build -c release          # in the repository root
#   sudo Deploy/install.sh          # then: systemctl enable --now keel.target
#
# Run with --help for options. Safe to re-run for upgrades: binaries and unit
# files are replaced, existing /etc/keel/*.env configuration is never touched.
set -euo pipefail

readonly DAEMONS=(broker registry launcher health tracer)
# keel-task-supervisor is the parent of every task; keel-launcher finds it beside itself.
readonly BINARIES=(keel-broker keel-registry keel-launcher keel-task-supervisor keel-health keel-tracer keel)
readonly UNIT_DIR=/etc/systemd/system
readonly CONF_DIR=/etc/keel

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)

prefix=/usr/local
bin_dir=""
dry_run=0

usage() {
    cat <<EOF
Usage: $(basename -- "$0") [OPTIONS]

Install the Keel binaries, systemd units and example configuration.

Options:
  --prefix DIR    Install binaries into DIR/bin (default: /usr/local).
                  The units' ExecStart= lines are rewritten to match.
  --bin-dir DIR   Directory containing the built binaries
                  (default: .build/release in the repository root,
                  i.e. $repo_root/.build/release).
  --dry-run       Print what would be done without changing anything
                  (does not require root).
  -h, --help      Show this help and exit.

Installs:
  DIR/bin/{$(IFS=,; echo "${BINARIES[*]}")}
  $UNIT_DIR/keel-{$(IFS=,; echo "${DAEMONS[*]}")}.service, keel.target
  $CONF_DIR/NAME.env          (from Deploy/env/NAME.env.example, only if absent)
  $CONF_DIR/NAME.env.example  (always refreshed, for reference)

Afterwards enable and start everything with:
  systemctl enable --now keel.target
EOF
}

die() {
    echo "error: $*" >&2
    exit 1
}

# run CMD ARGS...: execute, or just print it under --dry-run.
run() {
    if ((dry_run)); then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

while (($#)); do
    case "$1" in
        --prefix)
            (($# >= 2)) || die "--prefix needs a directory"
            prefix=$2
            shift 2
            ;;
        --prefix=*)
            prefix=${1#*=}
            shift
            ;;
        --bin-dir)
            (($# >= 2)) || die "--bin-dir needs a directory"
            bin_dir=$2
            shift 2
            ;;
        --bin-dir=*)
            bin_dir=${1#*=}
            shift
            ;;
        --dry-run)
            dry_run=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "error: unknown argument: $1" >&2
            echo "Try '$(basename -- "$0") --help'." >&2
            exit 2
            ;;
    esac
done

[[ -n "$prefix" ]] || die "--prefix must not be empty"
prefix=${prefix%/}
[[ -n "$prefix" ]] || prefix=/ # --prefix / installs into /bin
bin_dir=${bin_dir:-$repo_root/.build/release}
target_bin=${prefix%/}/bin

if ((!dry_run)) && [[ $(id -u) -ne 0 ]]; then
    die "must run as root (try: sudo $0 ...), or use --dry-run to see what it would do"
fi

# ---- Preflight: everything we need must exist before touching the system ----

[[ -d "$bin_dir" ]] || die "binary directory not found: $bin_dir
  Build the binaries first: swift build -c release   (in $repo_root)
  or point --bin-dir at the directory that contains them."

missing=0
for b in "${BINARIES[@]}"; do
    if [[ ! -f "$bin_dir/$b" || ! -x "$bin_dir/$b" ]]; then
        echo "error: missing binary: $bin_dir/$b" >&2
        missing=1
    fi
done
if ((missing)); then
    echo "Build it with: swift build -c release   (in $repo_root)" >&2
    echo "or pass --bin-dir DIR pointing at the directory with all seven binaries." >&2
    exit 1
fi

for d in "${DAEMONS[@]}"; do
    [[ -f "$script_dir/systemd/keel-$d.service" ]] || die "missing $script_dir/systemd/keel-$d.service"
    [[ -f "$script_dir/env/$d.env.example" ]] || die "missing $script_dir/env/$d.env.example"
done
[[ -f "$script_dir/systemd/keel.target" ]] || die "missing $script_dir/systemd/keel.target"

((dry_run)) && echo "Dry run: nothing will be changed."

# ---- Binaries ---------------------------------------------------------------

echo "Installing binaries to $target_bin"
run install -d -m 0755 "$target_bin"
for b in "${BINARIES[@]}"; do
    run install -m 0755 "$bin_dir/$b" "$target_bin/$b"
done

# ---- systemd units ----------------------------------------------------------

echo "Installing systemd units to $UNIT_DIR"
if [[ "$target_bin" != /usr/local/bin ]]; then
    echo "  (ExecStart= rewritten to $target_bin/keel-NAME)"
fi
run install -d -m 0755 "$UNIT_DIR"
tmp_dir=$(mktemp -d)
trap 'rm -rf -- "$tmp_dir"' EXIT
for d in "${DAEMONS[@]}"; do
    unit=keel-$d.service
    src=$script_dir/systemd/$unit
    if [[ "$target_bin" != /usr/local/bin ]]; then
        # Units ship with ExecStart=/usr/local/bin/keel-NAME; follow --prefix.
        sed "s|^ExecStart=/usr/local/bin/|ExecStart=$target_bin/|" "$src" >"$tmp_dir/$unit"
        src=$tmp_dir/$unit
    fi
    run install -m 0644 "$src" "$UNIT_DIR/$unit"
done
run install -m 0644 "$script_dir/systemd/keel.target" "$UNIT_DIR/keel.target"

# ---- Configuration (never overwritten) --------------------------------------

echo "Installing configuration to $CONF_DIR"
run install -d -m 0755 "$CONF_DIR"
for d in "${DAEMONS[@]}"; do
    example=$script_dir/env/$d.env.example
    run install -m 0644 "$example" "$CONF_DIR/$d.env.example"
    if [[ -e "$CONF_DIR/$d.env" ]]; then
        echo "  keeping existing $CONF_DIR/$d.env (compare with $CONF_DIR/$d.env.example)"
    else
        run install -m 0640 "$example" "$CONF_DIR/$d.env"
    fi
done

# ---- systemd ----------------------------------------------------------------

# Same test as sd_booted(3): /run/systemd/system exists only if systemd is PID 1.
if [[ -d /run/systemd/system ]]; then
    run systemctl daemon-reload
    systemd_running=1
else
    echo "systemd is not running as PID 1 here; skipping 'systemctl daemon-reload'."
    systemd_running=0
fi

cat <<EOF

Keel installed$( ((dry_run)) && echo " (dry run: nothing was changed)").
Next steps:
  1. Review the configuration in $CONF_DIR/*.env, at least:
       - launcher.env: KEEL_RESOURCES, KEEL_BROKER (on worker nodes)
       - broker.env:   KEEL_STORE
  2. Start everything now and at boot:
       systemctl enable --now keel.target
     On a worker-only node, first mask the daemons it should not run:
       systemctl mask keel-broker.service keel-registry.service \\
                      keel-health.service keel-tracer.service
  3. Check:
       systemctl status 'keel-*'
       journalctl -u 'keel-*' -f
EOF
if ((!systemd_running)); then
    echo "(systemd is not PID 1 on this machine: run these on a systemd host.)"
fi
