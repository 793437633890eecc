#!/usr/bin/env bash
# Builds every Lambda function of infra/template.yaml into target/lambda/<function>/bootstrap.zip,
# for Amazon Linux 2023 (provided.al2023: glibc 2.34, so no symbol newer than GLIBC_2.34).
#
#   infra/package.sh            # arm64 (the template's default Architecture)
#   infra/package.sh x86_64     # the fallback; deploy with Architecture=x86_64
#
# What it needs, it installs into the git-ignored ${PAYBRIDGE_TOOLS_DIR:-.local}/package/: zig from
# PyPI (`ziglang`, in a venv) and cargo-zigbuild (`cargo install --root`); zig's and
# cargo-zigbuild's caches live there too. It adds the Rust target with rustup if it is missing
# (arm64 falls back to x86_64 when the target cannot be installed). Slow: a cold build of the
# nine functions takes 20 minutes or more on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
GLIBC=2.34
# The template's functions: package (= binary) names under functions/.
FUNCTIONS=(admin pay-now invite accept-invite portal save-method webhook auto-pay-tick anet-proxy)

arch=${1:-${ARCH:-arm64}}
case $arch in
arm64 | aarch64) arch=arm64 triple=aarch64-unknown-linux-gnu ;;
x86_64 | amd64) arch=x86_64 triple=x86_64-unknown-linux-gnu ;;
*)
    echo "usage: $0 [arm64|x86_64]" >&2
    exit 2
    ;;
esac

tools=${PAYBRIDGE_TOOLS_DIR:-$ROOT/.local}/package
mkdir -p "$tools"
export XDG_CACHE_HOME=$tools/cache ZIG_GLOBAL_CACHE_DIR=$tools/cache/zig
export PIP_CACHE_DIR=$tools/cache/pip PIP_DISABLE_PIP_VERSION_CHECK=1

# zig, from PyPI: cargo-zigbuild finds it as `python3 -m ziglang` with the venv first on PATH.
if ! "$tools/venv/bin/python" -c "import ziglang" 2>/dev/null ||
    [ "$("$tools/venv/bin/pip" show ziglang 2>/dev/null | sed -n 's/^Version: //p')" != "$ZIGLANG_VERSION" ]; then
    echo "== installing ziglang $ZIGLANG_VERSION into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet "ziglang==$ZIGLANG_VERSION"
fi
if [ "$("$tools/bin/cargo-zigbuild" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_ZIGBUILD_VERSION" ]; then
    echo "== installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION into $tools"
    cargo install --quiet --locked --root "$tools" --version "$CARGO_ZIGBUILD_VERSION" cargo-zigbuild
fi
export PATH=$tools/venv/bin:$tools/bin:$PATH

if ! rustup target list --installed | grep -qx "$triple"; then
    echo "== rustup target add $triple"
    if ! rustup target add "$triple"; then
        if [ "$arch" = arm64 ]; then
            echo "!! cannot install $triple: falling back to x86_64 (deploy with Architecture=x86_64)" >&2
            exec "$0" x86_64
        fi
        exit 1
    fi
fi

echo "== cargo zigbuild --release --target $triple.$GLIBC (${FUNCTIONS[*]})"
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
# A target directory of its own: its own glibc-suffixed build, and no lock held on target/ while
# this slow build runs beside tests.
build=$ROOT/target/zigbuild
start=$(date +%s)
CARGO_TARGET_DIR=$build cargo zigbuild --release --locked --target "$triple.$GLIBC" "${packages[@]}"
echo "   built in $(($(date +%s) - start)) s"

# The highest GLIBC_x.y symbol version a binary needs (readelf reads any architecture's ELF).
glibc_needed() {
    readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

out=$ROOT/target/lambda
mkdir -p "$out"
printf '\n%-14s %12s %12s %8s  %s\n' function bootstrap zip glibc file
failed=0
for f in "${FUNCTIONS[@]}"; do
    dir=$out/$f
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$build/$triple/release/$f" "$dir/bootstrap"
    chmod 755 "$dir/bootstrap"
    # A fixed time stamp: the same binary gives the same zip (and SAM uploads nothing new).
    touch -d '2000-01-01 00:00:00 UTC' "$dir/bootstrap"
    (cd "$dir" && zip -q -X -9 bootstrap.zip bootstrap)
    needed=$(glibc_needed "$dir/bootstrap")
    if [ "$(printf '%s\n%s\n' "$needed" "$GLIBC" | sort -V | tail -1)" != "$GLIBC" ]; then
        echo "!! $f needs GLIBC_$needed, newer than Amazon Linux 2023's $GLIBC" >&2
        failed=1
    fi
    printf '%-14s %12s %12s %8s  %s\n' "$f" "$(stat -c %s "$dir/bootstrap")" "$(stat -c %s "$dir/bootstrap.zip")" \
        "$needed" "$(file -b "$dir/bootstrap" | cut -d, -f1-2)"
done
echo "$arch" >"$out/ARCHITECTURE"
echo
echo "zips in target/lambda/<function>/bootstrap.zip ($arch; sizes in bytes)"
if [ "$arch" = x86_64 ]; then
    echo "deploy with: sam deploy --parameter-overrides Architecture=x86_64 ..."
fi
exit $failed
