# The Redis store's tests start real redis-server processes (a single
# server and a 3-master cluster, with redis-cli to create it); both come
# with Debian's redis-server package. IM_SKIP_REDIS=1 skips those tests.
if [ "${IM_SKIP_REDIS:-}" != "1" ]; then
    need_apt redis-server redis-server
    need_apt redis-cli redis-server
fi
