# hostd %preun: on erase (not upgrade) stop and disable the unit.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now hostd.service >/dev/null 2>&1 || :
fi
