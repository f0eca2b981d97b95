"""Sends one of each Segment call through an official SDK, as a shop would.

Usage: python send.py segment|rudder HOST WRITE_KEY PREFIX

Every id starts with PREFIX, so the test can find what arrived. The SDK is used with its own
defaults (Basic auth, batching in a background thread, retries; gzip for RudderStack, on by
default there, and switched on for Segment too), then flushed. One track call is sent twice with
the same message id, as an SDK retry would, and must be stored once.
"""

import logging
import sys

sdk, host, write_key, prefix = sys.argv[1:5]

if sdk == "segment":
    import segment.analytics as analytics

    analytics.write_key = write_key
    analytics.host = host
    analytics.gzip = True
elif sdk == "rudder":
    import rudderstack.analytics as analytics

    analytics.write_key = write_key
    analytics.dataPlaneUrl = host
else:
    sys.exit(f"unknown sdk {sdk!r}")

errors = []


def on_error(error, batch):
    errors.append(f"{error} ({len(batch)} messages)")


analytics.on_error = on_error
analytics.max_retries = 2
logging.basicConfig(level=logging.WARNING)

user = f"{prefix}-user"
anon = f"{prefix}-anon"

# Identify with traits in the body and in context.traits (RudderStack moves body traits there).
analytics.identify(
    user,
    {"email": f"{prefix}@example.com", "plan": "pro"},
    context={"traits": {"firstName": "Ada"}, "ip": "203.0.113.7", "locale": "de-DE"},
)
# A visitor browses anonymously, then signs up: alias merges the visitor into the user.
analytics.track(anonymous_id=anon, event="Product Viewed", properties={"sku": "tea-1"})
analytics.flush()
analytics.alias(anon, user)
analytics.track(
    user,
    "Order Completed",
    {"order_id": f"{prefix}-o1", "total": 12.5, "currency": "EUR"},
    message_id=f"{prefix}-retried",
)
# The same message again, as a retry after a lost answer would send it.
analytics.track(
    user,
    "Order Completed",
    {"order_id": f"{prefix}-o1", "total": 12.5, "currency": "EUR"},
    message_id=f"{prefix}-retried",
)
analytics.page(user, category="Docs", name="Pricing", properties={"url": "https://shop.example/pricing"})
analytics.screen(user, name="Home")
analytics.group(user, "acme", {"name": "Acme", "employees": 12})
analytics.flush()
analytics.shutdown()

if errors:
    sys.exit("the SDK reported errors: " + "; ".join(errors))
print("sent")
