"""Reports: each ticket's contribution kept in roll-ups by a commit hook (``rollups``), and the reports read from them (``read``)."""
