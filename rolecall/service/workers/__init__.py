"""Several worker processes serving one port (`rolecall serve --workers N`): the parent's coordinator and
each worker's link to it, the one channel through which the workers share admission, affinity, health and
/metrics (docs/architecture.md, "Workers")."""
