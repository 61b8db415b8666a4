"""The neutral core every layer shares: conversation turns, the generation request, engine chunks, output
events, usage and typed errors. No door's vocabulary enters here (no `toolu_`/`msg_` ids, no stop-reason
names, no envelopes), and it imports nothing else of rolecall."""
