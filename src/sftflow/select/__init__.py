"""Selection with model signals: score records, then choose a subset by rule, diversity and quotas."""
