-- wrk script for bench/intake_bench.py: POST pre-signed Stripe events, each thread from its own file.
--
--   wrk -t2 -c16 -d5s --latency -s bench/intake.lua URL -- FILE_PREFIX OFFSETS WRAP
--
-- Thread n reads FILE_PREFIX.n (one event a line: "<Stripe-Signature>\t<payload>") from byte offset
-- OFFSETS[n] (comma-separated, one per thread), a line for each request. WRAP=0: every request is a
-- different event, and running out stops wrk with an error (a repeated event is a duplicate, cheaper,
-- and would flatter the figure); WRAP=1 starts the file again (the no-op route, which reads nothing).
--
-- The lines are read as the requests go (a few microseconds each), not loaded in init: wrk runs each
-- thread's init in turn and starts a thread as soon as its own init is done, but counts the run's time
-- from after the last, so an init that reads a large file lets the first thread run untimed.
--
-- done() prints one line a thread, "intake.lua thread=N used=… sent=… ok=… other=…", for the bench to
-- move its offsets on and to check every request got its 200.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local prefix, offsets = args[1], args[2]
   wrapping = args[3] == "1"
   local offset = {}
   for value in offsets:gmatch("%d+") do
      offset[#offset + 1] = tonumber(value)
   end
   events = assert(io.open(prefix .. "." .. id, "rb"))
   events:seek("set", offset[id + 1])
   used, sent, ok, other, first_error = 0, 0, 0, 0, ""
   -- wrk calls request() once on its first thread before the run, only to check that the request
   -- parses (script_verify_request); that event is used up but never sent.
   verifying = id == 0
end

function request()
   local line = events:read("*l")
   if line == nil then
      if not wrapping then
         error("out of events: raise EVENTS")
      end
      events:seek("set", 0)
      line = events:read("*l")
   end
   used = used + 1
   if verifying then
      verifying = false
   else
      sent = sent + 1
   end
   local tab = line:find("\t", 1, true)
   local headers = {["Stripe-Signature"] = line:sub(1, tab - 1), ["Content-Type"] = "application/json"}
   return wrk.format("POST", nil, headers, line:sub(tab + 1))
end

function response(status, headers, body)
   if status == 200 then
      ok = ok + 1
   else
      other = other + 1
      if first_error == "" then
         first_error = status .. " " .. body:sub(1, 200):gsub("%s+", " ")
      end
   end
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      io.write(string.format("intake.lua thread=%d used=%d sent=%d ok=%d other=%d first_error=%s\n",
                             thread:get("id"), thread:get("used"), thread:get("sent"), thread:get("ok"),
                             thread:get("other"), thread:get("first_error")))
   end
end
