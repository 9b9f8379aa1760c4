"""Speed, measured side by side in one run: ``xfw bench`` (:mod:`.epochs`: seconds per
epoch of each framework, and the nested-loop baseline) and ``xfw bench --grid``
(:mod:`.grid`: the whole grid against Keras alone the course's way)."""
