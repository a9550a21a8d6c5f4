-- etcd-range.lua: wrk script, POST /v3/kv/range of one key out of 1,000
-- (see etcd-common.lua). BENCH_SERIALIZABLE=1: serializable reads (the
-- member answers from its own state); otherwise linearizable (ReadIndex
-- through the leader). A response counts only if it is HTTP 200 with
-- count 1 and the expected value (every key holds the same value, written
-- by the driver beforehand); anything else is an error.
--   BENCH_LUA_DIR=tests/bench BENCH_SERIALIZABLE=1 wrk -t2 -c64 -d5s \
--       -s tests/bench/etcd-range.lua http://127.0.0.1:2379
local dir = os.getenv("BENCH_LUA_DIR") or "."
local C = dofile(dir .. "/etcd-common.lua")
local ser = os.getenv("BENCH_SERIALIZABLE") == "1"
local want_value = '"value":"' .. C.value_b64 .. '"'

C.install(ser and "range-serializable" or "range-linearizable",
          "/v3/kv/range", function(i)
    return string.format('{"key":"%s","serializable":%s}', C.key_b64(i),
                         ser and "true" or "false")
end, function(status, body)
    if status ~= 200 then
        return "HTTP " .. status
    end
    if not body:find('"count":"1"', 1, true) then
        return "range reply without count 1"
    end
    if not body:find(want_value, 1, true) then
        return "range reply without the expected value"
    end
    return nil
end)
