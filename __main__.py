"""Stories of Software: one resource graph per stack.

Settings are read and validated once; the one composition (composition/) runs every service
(services/) on the stack's placement (placements/) and exports the outputs.
"""

import composition
import settings

composition.build(settings.load())
