#!/usr/bin/env bash
# The aarch64 lane's machine: an arm64 Debian Python under qemu-user, on this x86 host.
#
#   tools/arm_lane.sh setup ROOT      # once: qemu-user, binfmt, arm64 Python, aarch64 wheels
#   tools/arm_lane.sh python ROOT ... # run the arm64 Python (QEMU_CPU picks the core)
#
# No device and no image download: Debian's qemu-user-static (10.x from bookworm-backports:
# 7.2 passes the x86 /proc/cpuinfo through and onnxruntime's cpuinfo crashes on it), the
# arm64 Debian packages of Python 3.11 and gcc (debootstrap's first stage, unpacked), the
# runtimes' own aarch64 wheels from PyPI (installed by this host's pip for aarch64), and
# xtcocotools compiled by the arm64 gcc under emulation (it has no aarch64 wheel).
# Needs root (apt, binfmt_misc). rtmw itself runs from the checkout (PYTHONPATH).
set -euo pipefail

command=${1:?usage: $0 setup|python ROOT [args]}
root=${2:?usage: $0 setup|python ROOT [args]}
shift 2
# absolute: setup builds xtcocotools from inside its source folder
mkdir -p "$root" && root=$(cd "$root" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
PIP=${PIP:-$here/.venv/bin/pip}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
MAGIC='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
# the runtimes of the lane, pinned to the versions the x86 side exports with
WHEELS=(numpy==2.4.6 opencv-python-headless==5.1.0.95 click tqdm tabulate scipy
        onnxruntime==1.32.0 ncnn==1.0.20261020 ai-edge-litert==2.3.0 openvino==2026.4.1
        mnn==3.6.1 matplotlib cython setuptools)

run_python() {
    QEMU_LD_PREFIX="$root/rootfs" PYTHONPATH="$root/site:$here" \
        PATH="$root/rootfs/usr/bin:$PATH" "$root/rootfs/usr/bin/python3.11" "$@"
}

setup() {
    mkdir -p "$root"
    if ! qemu-aarch64-static --version 2>/dev/null | grep -q -E 'version (9|1[0-9])\.'; then
        echo "deb $MIRROR $SUITE-backports main" > /etc/apt/sources.list.d/rtmw-backports.list
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t "$SUITE-backports" \
            qemu-user-static >/dev/null
    fi
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q debootstrap >/dev/null
    # binfmt: arm64 binaries (and the ones they start) run under qemu; F keeps the
    # interpreter open, so a re-registration picks up a newer qemu
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64
    printf ':qemu-aarch64:M::%s:%s:/usr/bin/qemu-aarch64-static:F\n' "$MAGIC" "$MASK" \
        > /proc/sys/fs/binfmt_misc/register
    if [ ! -x "$root/rootfs/usr/bin/python3.11" ]; then
        rm -rf "$root/rootfs"
        debootstrap --foreign --arch=arm64 --variant=minbase \
            --include=python3.11,python3.11-dev,libpython3.11-dev,gcc-12,libc6-dev,libgomp1 \
            "$SUITE" "$root/rootfs" "$MIRROR" >"$root/debootstrap.log"
        for deb in "$root"/rootfs/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$root/rootfs"; done
        rm -f "$root"/rootfs/var/cache/apt/archives/*.deb
        ln -sf gcc-12 "$root/rootfs/usr/bin/gcc"
        ln -sf aarch64-linux-gnu-gcc-12 "$root/rootfs/usr/bin/aarch64-linux-gnu-gcc"
    fi
    if [ ! -d "$root/site/onnxruntime" ]; then
        local platforms=()
        for tag in 2_36 2_35 2_34 2_28 2_27 2_24 2_17; do platforms+=(--platform "manylinux_${tag}_aarch64"); done
        "$PIP" install --quiet --target "$root/site" "${platforms[@]}" --platform manylinux2014_aarch64 \
            --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 "${WHEELS[@]}"
    fi
    if [ ! -d "$root/site/xtcocotools" ]; then
        local src="$root/xtcocotools-src"
        rm -rf "$src" && mkdir -p "$src"
        local url
        url=$(curl -fsS https://pypi.org/pypi/xtcocotools/json | python3 -c \
            "import json,sys; print([u['url'] for u in json.load(sys.stdin)['urls'] if u['filename'] == 'xtcocotools-1.14.3.tar.gz'][0])")
        curl -fsS -o "$src/xtcocotools-1.14.3.tar.gz" "$url"
        tar -xzf "$src"/xtcocotools-*.tar.gz -C "$src"
        (cd "$src"/xtcocotools-1.14.3 && run_python "$here/tools/arm_lane_build_ext.py" >"$root/xtcocotools-build.log" 2>&1)
        cp -r "$src"/xtcocotools-1.14.3/xtcocotools "$root/site/"
    fi
    QEMU_CPU=cortex-a53 run_python -c "import onnxruntime, xtcocotools.cocoeval, rtmw.host as h; print(h.describe(h.cpu_fingerprint()))"
}

case "$command" in
    setup) setup ;;
    python) run_python "$@" ;;
    *) echo "unknown command $command (setup|python)" >&2; exit 2 ;;
esac
