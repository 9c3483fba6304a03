"""Stories of Software: one resource graph per stack.

Settings are read and validated once; the placement they name builds the platform and exports
the outputs (platforms/).
"""

import platforms
import settings

platforms.build(settings.load())
