"""File I/O: palette PNG masks, DAVIS / YouTube-VOS result layouts, video and overlays."""
