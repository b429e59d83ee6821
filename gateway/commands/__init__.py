"""Commands to core banking: built from verdicts, kept in the outbox, pushed as signed webhooks or streamed."""
