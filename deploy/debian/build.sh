#!/bin/sh
# Build the gworkerd Debian package: build.sh BINDIR. Stages the binaries
# (static, stripped), the units with the package's paths, man pages made
# from each command's --help (make man) and the changelog in BINDIR/deb, then packs
# BINDIR/gworkerd.deb with nfpm (deploy/debian/nfpm.yaml).
set -eu
export LC_ALL=C
cd "$(dirname "$0")/../.."
BIN=${1:?usage: build.sh BINDIR}
GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}

DEB_STAGE=$BIN/deb
rm -rf "$DEB_STAGE"
mkdir -p "$DEB_STAGE"

# The version: a v-tag's number, else 0.0~git<commit date>.<commit>.
if tag=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	DEB_VERSION=$(echo "${tag#v}" | sed 's/-\([0-9]*\)-g/+git\1./')
else
	DEB_VERSION=0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short=7 HEAD)
fi
DEB_ARCH=$($GO env GOARCH)

CGO_ENABLED=0 $GO build -trimpath -ldflags="-s -w -X github.com/gworkerd/gworkerd/internal/version.stamp=${VERSION:-$DEB_VERSION}" -o "$DEB_STAGE/" ./cmd/gserverd ./cmd/gworkerd ./cmd/gclient

for u in gserverd gworkerd; do
	sed -e 's#/usr/local/sbin/#/usr/sbin/#g' \
		-e 's#^\# Install: .*#\# Installed by the gworkerd package; the config is a conffile.#' \
		-e '/^\# then: systemctl/d' \
		"deploy/$u.service" >"$DEB_STAGE/$u.service"
done

# The man pages, made as make build makes them (make man), compressed.
${MAKE:-make} -s man BIN="$DEB_STAGE" GO="$GO" MANSOURCE="gworkerd $DEB_VERSION"
for page in gserverd.8 gworkerd.8 gclient.1; do
	gzip -9n <"$DEB_STAGE/man/$page" >"$DEB_STAGE/$page.gz"
done

{
	echo "gworkerd ($DEB_VERSION) unstable; urgency=medium"
	echo
	echo "  * Built from git commit $(git rev-parse --short=12 HEAD)."
	echo
	echo " -- gworkerd maintainers <dev@gworkerd.invalid>  $(git log -1 --format=%cd --date=format:'%a, %d %b %Y %H:%M:%S %z')"
} | gzip -9n >"$DEB_STAGE/changelog.gz"

# Reproducible: every time stamp in the package is the commit's.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export DEB_VERSION DEB_ARCH SOURCE_DATE_EPOCH
# nfpm expands the environment in some fields only; the staging paths are
# written in.
sed "s#\${DEB_STAGE}#$DEB_STAGE#g" deploy/debian/nfpm.yaml >"$DEB_STAGE/nfpm.yaml"
$GO run "$NFPM" package --config "$DEB_STAGE/nfpm.yaml" --packager deb --target "$BIN/gworkerd.deb"
