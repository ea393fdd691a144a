"""Load-testing tools for ClickMe, kept out of the product: the production stack on one machine,
a Locust player that plays in real time, CPU accounting per process kind, and the ramp (`make load`)."""
