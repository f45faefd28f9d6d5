"""The web app (``copyscope app``): explore every copy and query the training set in milliseconds.

``state`` loads the runs and builds the indexes once; ``views`` are plain functions from the state
and a user's choices to tables, images and text (no Gradio, so they can be tested and timed);
``preprocess`` puts a drawing or photo in the training images' format; ``live`` generates new
images with a run's model and judges them; ``ui`` wires the views into Gradio.
"""
