"""Item-to-item collaborative filtering: a sparse top-k movie-to-movie similarity.

Offline (`similarity.py`, `build.py`): from the training interactions, each movie's `top_k`
most similar movies, either by shrunk cosine co-occurrence (sparse products, memory
O(movies x top_k): fits a 60k-movie catalog) or by EASE (a dense ridge regression solved
once, then cut to the same sparse top-k; only for catalogs up to `ease_max_items`).

Runtime (`runtime.py`): the neighbour matrix and the users' training histories in memory;
a user's candidates are the unseen movies with the largest summed similarity to the movies
they rated. Used by the offline evaluation, the ranker's training and the Retrieval
deployment alike.
"""
