"""Visual explanations of a classifier's decisions, and tests of where they look.

    methods.py   saliency maps for a batch of images (Grad-CAM, Grad-CAM++,
                 Score-CAM, SmoothGrad, integrated gradients)
    overlays.py  the maps drawn over the images, and the JSON of their peaks
    run.py       `medcap explain`: a trained workdir's model on image files
"""
