# hostd %postun: on erase the hostd user goes; module data under
# /var/lib/hostd stays unless HOSTD_PURGE_DATA=yes is set.
if [ "$1" -eq 0 ]; then
    rm -rf /run/hostd
    if [ "${HOSTD_PURGE_DATA:-}" = yes ]; then rm -rf /var/lib/hostd; fi
    getent passwd hostd >/dev/null && userdel hostd >/dev/null 2>&1 || :
    getent group hostd >/dev/null && groupdel hostd >/dev/null 2>&1 || :
fi
