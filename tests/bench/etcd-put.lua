-- etcd-put.lua: wrk script, POST /v3/kv/put of a 100-byte value over 1,000
-- keys (see etcd-common.lua for the environment and the output line).
-- A response counts only if it is HTTP 200 with a header carrying a
-- revision; anything else is an error.
--   BENCH_LUA_DIR=tests/bench wrk -t2 -c64 -d5s -s tests/bench/etcd-put.lua \
--       http://127.0.0.1:2379
local dir = os.getenv("BENCH_LUA_DIR") or "."
local C = dofile(dir .. "/etcd-common.lua")

C.install("put", "/v3/kv/put", function(i)
    return string.format('{"key":"%s","value":"%s"}', C.key_b64(i),
                         C.value_b64)
end, function(status, body)
    if status ~= 200 then
        return "HTTP " .. status
    end
    if not body:find('"header":{', 1, true) or
            not body:find('"revision":"', 1, true) then
        return "put reply without header.revision"
    end
    return nil
end)
