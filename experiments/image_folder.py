"""Lab 10-4: train the lab's small CNN on a folder of images (root/<class>/<image>), save it and load it back.

The same command as ``python -m jaxnn image_folder``; its flags and printout:
jaxnn/cli/commands/image_folder.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("image_folder")
