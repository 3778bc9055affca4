"""``python train.py model=vgg19 ...``: see facemask.train and src/facemask/conf/train.yaml."""

from facemask.train import main

if __name__ == "__main__":
    main()
