"""connectome-gnn: recover connectivity, neuron types and dynamics of simulated circuits with GNNs.

Stages (each a sub-package; a stage never imports a later one):
simulate -> models -> train -> analysis -> aggregate.  Model families (simulator + learned model +
readouts) are plug-ins registered in :mod:`connectome_gnn.families`.
"""

__version__ = "0.1.0"
