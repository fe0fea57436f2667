"""Local test doubles of the two remote services, for tests, the demo and the benchmarks.

`FakeEconomic` is a small real HTTP server speaking e-conomic's REST API (validating bodies against
e-conomic's published schemas); `FakeStripe` serves Stripe objects to the official `stripe` SDK.
Both run on 127.0.0.1 on a free port, in a thread: `with FakeEconomic() as fake: fake.url`.
"""
