"""One request end to end: prepare, stream events, fold them into a Message."""
