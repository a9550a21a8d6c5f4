-- etcd-common.lua: shared by etcd-put.lua and etcd-range.lua (wrk scripts
-- for tests/bench/run.sh). Loaded with dofile from the directory given in
-- BENCH_LUA_DIR. Environment:
--   BENCH_KEYS         keys /bench/k00000 .. (default 1000)
--   BENCH_VALUE_BYTES  value size (default 100); every key holds the same
--                      value, so a range reply can be checked exactly
--   BENCH_PREFIX       key prefix (default /bench/k)
-- Each wrk thread walks the keys from its own offset. Every response is
-- checked by the including script's check(status, body); a failed check is
-- an error. done() prints one JSON line in loadgen's format:
--   {"mode":..,"threads":..,"seconds":..,"ops":..,"ops_per_s":..,
--    "errors":..,"first_error":..,"p50_us":..,"p99_us":..,"p999_us":..}
-- where ops counts only checked-good responses.
local M = {}

local alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Standard base64 (RFC 4648) with padding.
function M.b64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local c1 = math.floor(n / 262144) % 64
        local c2 = math.floor(n / 4096) % 64
        local c3 = math.floor(n / 64) % 64
        local c4 = n % 64
        out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1)
        out[#out + 1] = alphabet:sub(c2 + 1, c2 + 1)
        out[#out + 1] = b and alphabet:sub(c3 + 1, c3 + 1) or "="
        out[#out + 1] = c and alphabet:sub(c4 + 1, c4 + 1) or "="
    end
    return table.concat(out)
end

M.keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
M.value_bytes = tonumber(os.getenv("BENCH_VALUE_BYTES") or "100")
M.prefix = os.getenv("BENCH_PREFIX") or "/bench/k"

-- The value every key holds: the same bytes loadgen writes.
local v = {}
for i = 0, M.value_bytes - 1 do
    v[#v + 1] = string.char(97 + i % 26)
end
if M.value_bytes > 0 then
    v[M.value_bytes] = "\n"
end
M.value_b64 = M.b64(table.concat(v))

function M.key_b64(i)
    return M.b64(string.format("%s%05d", M.prefix, i))
end

-- Installs wrk's setup/init/request/response/done globals. make_body(i)
-- gives the JSON body for key i; check(status, body) returns nil when the
-- response is good, otherwise a short reason.
function M.install(mode, path, make_body, check)
    local threads = {}
    local next_id = 0

    function setup(thread)
        thread:set("id", next_id)
        next_id = next_id + 1
        threads[#threads + 1] = thread
    end

    local reqs = {}
    local pos = 0
    function init(args)
        local headers = {["Content-Type"] = "application/json"}
        for i = 0, M.keys - 1 do
            reqs[i + 1] = wrk.format("POST", path, headers, make_body(i))
        end
        pos = (id * 997) % M.keys
        bad = 0
        good = 0
        first_error = ""
    end

    function request()
        pos = pos % M.keys + 1
        return reqs[pos]
    end

    function response(status, headers, body)
        local why = check(status, body)
        if why == nil then
            good = good + 1
        else
            bad = bad + 1
            if first_error == "" then
                first_error = why
            end
        end
    end

    function done(summary, latency, requests)
        local bad_total, good_total, first = 0, 0, ""
        for _, t in ipairs(threads) do
            bad_total = bad_total + t:get("bad")
            good_total = good_total + t:get("good")
            if first == "" then
                first = t:get("first_error")
            end
        end
        local e = summary.errors
        local transport = e.connect + e.read + e.write + e.timeout
        if first == "" and transport > 0 then
            first = "transport errors"
        end
        local secs = summary.duration / 1e6
        io.write(string.format(
            '{"mode":"%s","threads":%d,"seconds":%.2f,"ops":%d,' ..
            '"ops_per_s":%.0f,"errors":%d,"first_error":"%s",' ..
            '"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
            mode, #threads, secs, good_total, good_total / secs,
            bad_total + transport, first:gsub('"', "'"),
            latency:percentile(50), latency:percentile(99),
            latency:percentile(99.9)))
    end
end

return M
