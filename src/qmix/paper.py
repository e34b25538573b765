"""Facts of the QMIX paper (Rashid et al., 2018) that several parts read: kept here, free of heavy imports."""

PAPER_MAPS = ("3m", "5m", "8m", "2s3z", "3s5z", "1c3s5z")  # its six StarCraft maps, in its order (section 6)
