// The portal's only script of its own. No inline handlers anywhere: the CSP forbids them.
"use strict";
