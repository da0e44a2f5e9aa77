"""Small facts of the operating system and of time that every layer needs once.

Nothing here imports anything of shipmate's, so every package may use it (the router too).
"""
