# SPDX-License-Identifier: GPL-2.0
# Shared shell definitions for the dmabuf-lock scripts: the toolchain, the cache layout and the
# error convention (one line saying what is wrong and what to do).

DL_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# CI may run with a reduced environment: find the home directory without relying on $HOME.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
# rustup's cargo (for bindgen-cli, rustfilt and the userspace test) may be missing from a
# reduced PATH.
case ":$PATH:" in
*":$HOME/.cargo/bin:"*) ;;
*) [ -d "$HOME/.cargo/bin" ] && PATH=$PATH:$HOME/.cargo/bin ;;
esac

# The toolchain the kernel and every module of this project are built with.
DL_LLVM_SUFFIX=-22
DL_RUSTC=${RUSTC:-/usr/bin/rustc}
DL_BINDGEN_VERSION=0.72.1
DL_RUSTFILT_VERSION=0.2.1
DL_CARGO_ROOT=${DL_CARGO_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/dmabuf-lock/cargo}
DL_BINDGEN=${BINDGEN:-$DL_CARGO_ROOT/bin/bindgen}
DL_RUSTFILT=$DL_CARGO_ROOT/bin/rustfilt

# Everything downloaded or built lives here, outside the repository.
DL_CACHE=${DMABUF_LOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmabuf-lock}

# The kernel this project tests against.
DL_KERNEL_SERIES=7.3

die() {
	echo "dmabuf-lock: error: $*" >&2
	exit 1
}

note() {
	echo "dmabuf-lock: $*" >&2
}

# The Python interpreter, found once and handed down to the scripts a run starts: `python3` on
# PATH may be a version manager's shim (pyenv's runs a shell and several programs first: 80 ms a
# start against 12 ms for an interpreter itself, measured), and a test run judges every boot
# with it.
dl_python() {
	if [ -z "${DL_PYTHON:-}" ]; then
		DL_PYTHON=$(python3 -c 'import sys; print(sys.executable)') ||
			die "python3 not found; run 'make deps'"
		export DL_PYTHON
	fi
	[ -x "$DL_PYTHON" ] || die "DL_PYTHON=$DL_PYTHON is not a program (unset it to use python3)"
}

# Kernel configuration: config/$DL_CONFIG.config is the fragment applied on top of allnoconfig.
DL_CONFIG=${DL_CONFIG:-test}
DL_FRAGMENT=$DL_TOP/config/$DL_CONFIG.config
# A fragment with a '# arch: ARCH' line builds for another architecture (um: User-Mode Linux);
# the others are x86_64.
DL_ARCH=$(sed -n 's/^# arch: //p' "$DL_FRAGMENT" 2>/dev/null | head -n1)
# A '# kcflags: FLAGS' line adds FLAGS to the C flags of the kernel's own build (not of the
# modules built against it), for a workaround that no config option gives.
DL_KCFLAGS=$(sed -n 's/^# kcflags: //p' "$DL_FRAGMENT" 2>/dev/null | head -n1)

# Print a fragment with its '# include: NAME' lines replaced by config/NAME.config (expanded
# too): what Kconfig gets, and what the build directory's key is made from. The file's own
# header comments (before its first CONFIG_ or include line) are left out of an included file.
dl_fragment_text() { # fragment-file
	local line
	while IFS= read -r line; do
		case $line in
		"# include: "*)
			local inc=$DL_TOP/config/${line#\# include: }.config
			[ -r "$inc" ] || die "$1 includes '${line#\# include: }', which has no config/*.config"
			dl_fragment_text "$inc"
			;;
		*) echo "$line" ;;
		esac
	done <"$1"
}

# Which Debian source package was chosen, once resolved: "<package> <version> <deb file>".
DL_RESOLVED=$DL_CACHE/apt/resolved-$DL_KERNEL_SERIES

# Print the toolchain identity that a kernel build, and every module built against it, depends on.
dl_toolchain_id() {
	"$DL_RUSTC" --version
	"$DL_BINDGEN" --version 2>/dev/null | head -n1
	"clang$DL_LLVM_SUFFIX" --version | head -n1
}

# Print the build directory of the test kernel for the current fragment and toolchain. The key
# covers the Debian package version, the fragment's options (includes expanded; comments do not
# count, but its arch and kcflags lines do) and the toolchain, so changing any of them selects a fresh build while old ones stay
# cached.
dl_kernel_build_dir() {
	[ -r "$DL_RESOLVED" ] || return 1
	local pkg ver deb hash
	read -r pkg ver deb <"$DL_RESOLVED"
	hash=$( { dl_fragment_text "$DL_FRAGMENT" | grep '^CONFIG_'; dl_toolchain_id
		[ -z "$DL_ARCH" ] || echo "arch $DL_ARCH"
		[ -z "$DL_KCFLAGS" ] || echo "kcflags $DL_KCFLAGS"; } |
		sha256sum | cut -c1-12)
	echo "$DL_CACHE/kernel/${ver//[~+:]/_}-$DL_CONFIG-$hash"
}

# make(1) on the kernel tree with this project's toolchain.
dl_kmake() { # build-dir args...
	local build=$1
	shift
	make -C "$build" ${DL_ARCH:+ARCH=$DL_ARCH} LLVM="$DL_LLVM_SUFFIX" RUSTC="$DL_RUSTC" RUSTDOC="${DL_RUSTC%/*}/rustdoc" BINDGEN="$DL_BINDGEN" \
		CLIPPY_DRIVER=/usr/bin/clippy-driver RUSTFMT=/usr/bin/rustfmt "$@"
}
