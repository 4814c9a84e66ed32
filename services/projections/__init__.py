"""Case projections (read models) in MongoDB, rebuilt at will by replaying the topics."""
