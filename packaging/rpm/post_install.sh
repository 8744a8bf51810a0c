# hostd %post: the service user and state directories; enable the unit on
# first install (not started: nothing runs until the operator configures it).
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers hostd.conf
elif ! getent passwd hostd >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/hostd --no-create-home --shell /sbin/nologin hostd
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create hostd.conf || :
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl enable hostd.service >/dev/null 2>&1 || :
fi
if [ "$1" -gt 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl try-restart hostd.service >/dev/null 2>&1 || :
fi
