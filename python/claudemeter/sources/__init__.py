"""Where readings come from: each module turns one upstream into snapshots."""
