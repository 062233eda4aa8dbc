"""Planning: what a post will send, every channel x language rendered and measured before anything goes out."""
