// lyricnn studio
