"""What a run is: its config (and flags), its task (everything that depends on the token
level) and its checkpoint."""
