"""What a study is: its configuration, its grid of points and where its results go."""
