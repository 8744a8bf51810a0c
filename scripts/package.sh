#!/usr/bin/env bash
# Build hostd's .deb (dpkg-deb) and .rpm (rpmbuild) from the release build
# and packaging/: the file list (packaging/assets), the Debian control file
# and maintainer scripts (packaging/debian), the rpm spec and scriptlets
# (packaging/rpm). Prints the two paths. Debian's own tools, installed from
# apt when missing: nothing is compiled for packaging.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# CARGO_TARGET_DIR overrides .cargo/config.toml's target-dir, as for cargo.
target_dir=${CARGO_TARGET_DIR:-/var/tmp/hostd-target}
release="$target_dir/x86_64-unknown-linux-gnu/release"
out="$target_dir/packages"

command -v rpmbuild >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm; } >&2
cargo build --release --locked -p hostd -p hostd-sandbox >&2
# The man page and completions come from the CLI definition itself.
gen="$release/gen-docs"
rm -rf "$gen"
"$release/hostd" gen-docs "$gen"
gzip -9n "$gen/hostd.1"
version=$("$release/hostd" --version | awk '{ print $2 }')
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "package.sh: unexpected hostd --version: $version" >&2; exit 1; }
# Every file gets the last commit's time, so two builds of one commit
# differ only in their binaries.
epoch=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH=$epoch

work=$(mktemp -d /var/tmp/hostd-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
rm -rf "$out" && mkdir -p "$out"

# stage <deb|rpm> <root>: copy the assets of that package into <root>;
# prints "<flags> <mode> <destination>" for each file installed.
stage() {
  local kind=$1 root=$2 src dest mode flags path file
  while read -r src dest mode flags; do
    [[ -z "$src" || "$src" == \#* ]] && continue
    [[ ",$flags," == *,deb,* && $kind != deb ]] && continue
    [[ ",$flags," == *,rpm,* && $kind != rpm ]] && continue
    case "$src" in
      release/*) path="$release/${src#release/}" ;;
      gen-docs/*) path="$gen/${src#gen-docs/}" ;;
      *) path="$repo/$src" ;;
    esac
    # A destination ending in / is a directory: the source may be a glob.
    for file in $path; do
      [ -f "$file" ] || { echo "package.sh: packaging/assets: $src: no such file ($file)" >&2; exit 1; }
      local to=$dest
      [[ "$dest" == */ ]] && to="$dest$(basename "$file")"
      install -D -m "$mode" "$file" "$root$to"
      # Shipped binaries carry no symbol tables (a third of their size).
      [[ "$src" == release/* ]] && strip --strip-unneeded "$root$to"
      echo "${flags:--} $mode $to"
    done
  done < "$repo/packaging/assets"
}

# --- .deb -------------------------------------------------------------------
deb_root="$work/deb"
stage deb "$deb_root" > "$work/deb.files"
install -D -m 644 /dev/null "$deb_root/usr/share/doc/hostd/changelog.Debian.gz"
gzip -9n < packaging/debian/changelog > "$deb_root/usr/share/doc/hostd/changelog.Debian.gz"
mkdir -p "$deb_root/DEBIAN"
install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$deb_root/DEBIAN/"
awk '$1 ~ /(^|,)config(,|$)/ { print $3 }' "$work/deb.files" > "$deb_root/DEBIAN/conffiles"
(cd "$deb_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$deb_root/DEBIAN/md5sums"
installed_kib=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
sed -e "s/@VERSION@/$version-1/" -e "s/@INSTALLED_SIZE@/$installed_kib/" packaging/debian/control > "$deb_root/DEBIAN/control"
find "$deb_root" -exec touch -h -d "@$epoch" {} +
dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$out/hostd_${version}-1_amd64.deb" >&2

# --- .rpm -------------------------------------------------------------------
rpm_root="$work/rpm"
stage rpm "$rpm_root" > "$work/rpm.files"
find "$rpm_root" -exec touch -h -d "@$epoch" {} +
# %files: each file with its mode; conffiles are kept when edited.
awk '{
  prefix = ""
  if ($1 ~ /(^|,)config(,|$)/) prefix = "%config(noreplace) "
  else if ($1 ~ /(^|,)doc(,|$)/) prefix = "%doc "
  printf "%s%%attr(%s,root,root) %s\n", prefix, $2, $3
}' "$work/rpm.files" > "$work/files.list"
# Fill the spec's @…@ fields (scriptlets and file list are inserted whole).
awk -v version="$version" -v stage="$rpm_root" \
    -v post=packaging/rpm/post_install.sh -v preun=packaging/rpm/pre_uninstall.sh \
    -v postun=packaging/rpm/post_uninstall.sh -v files="$work/files.list" '
  function slurp(f,   line) { while ((getline line < f) > 0) print line; close(f) }
  /^@POST@$/ { slurp(post); next }
  /^@PREUN@$/ { slurp(preun); next }
  /^@POSTUN@$/ { slurp(postun); next }
  /^@FILES@$/ { slurp(files); next }
  { gsub(/@VERSION@/, version); gsub(/@STAGE@/, stage); print }
' packaging/rpm/hostd.spec > "$work/hostd.spec"
rpmbuild -bb --quiet \
  --define "_topdir $work/rpmbuild" --define "_rpmdir $work/rpms" \
  --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
  "$work/hostd.spec" >&2
mv "$work/rpms/hostd-${version}-1.x86_64.rpm" "$out/"
ls "$out"/*.deb "$out"/*.rpm
