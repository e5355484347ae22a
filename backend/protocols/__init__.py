"""Discussion protocols: who speaks when. One module per protocol."""
