"""Images in: sources (folder, TFDS), prepared records, pre-processing, the tf.data pipeline, the tf.data
service, and the generators of the offline demo and digits sets. Imports nothing above the base modules
(errors, files, seeds, config)."""
