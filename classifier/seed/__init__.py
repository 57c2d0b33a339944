"""The repository's own seed training set: hand-written tickets and the composer that varies them into labelled rows."""
