"""Monitors: probes that look at a provider's health, and the tracker that turns probes into state changes.

`probes` imports httpx: only the commands that probe import it, so start-up stays fast.
"""
