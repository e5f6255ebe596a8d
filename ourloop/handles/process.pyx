# Child processes: uv_spawn and reaping (ourloop/_subprocess.py).
