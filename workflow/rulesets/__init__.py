"""Merchants' rulesets as the workflow keeps them: versions, publish, rollback, simulate and backtest; the compiled-version cache; the virtual-clock timeline of a simulation."""
