# hostd %post: the service user and state directories; enable the unit on
# first install (not started: nothing runs until the operator configures it).
/usr/lib/hostd/hostd-setup
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl enable hostd.service >/dev/null 2>&1 || :
fi
if [ "$1" -gt 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl try-restart hostd.service >/dev/null 2>&1 || :
fi
